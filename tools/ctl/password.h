// Getting a password for `users add` / `users passwd` without it showing in `ps` or the shell history.
#pragma once

#include <istream>
#include <string>

namespace parley::ctl {

// The first line of `in` without its line end (\n or \r\n). Throws CtlError (exit 2) when `in` is empty
// or the line is.
std::string ReadPasswordLine(std::istream& in);

// Whether standard input is a terminal (prompting is possible).
bool StdinIsTerminal();

// Prompts on /dev/tty for a password twice, without echo, and returns it. Throws CtlError: exit 2 when
// there is no terminal, the two differ or the password is empty; exit 1 if reading fails.
std::string PromptPasswordTwice(const std::string& user);

}  // namespace parley::ctl

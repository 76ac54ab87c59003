#include "tools/ctl/password.h"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "tools/ctl/api.h"

namespace parley::ctl {
namespace {

// The terminal mode to put back if a signal arrives while echo is off (the handler restores it and re-raises).
struct termios g_saved;
int g_tty_fd = -1;

void RestoreAndDie(int sig) {
  if (g_tty_fd >= 0) tcsetattr(g_tty_fd, TCSAFLUSH, &g_saved);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

// Shows `prompt` and reads one line from the terminal `fd` with echo off; restores the terminal mode before
// returning. False if `fd` is not a terminal or nothing could be read.
bool ReadNoEcho(int fd, const char* prompt, std::string* out) {
  struct termios t;
  if (tcgetattr(fd, &t) != 0) return false;
  g_saved = t;
  g_tty_fd = fd;
  auto old_int = std::signal(SIGINT, RestoreAndDie);
  auto old_term = std::signal(SIGTERM, RestoreAndDie);
  t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  t.c_lflag |= ECHONL;
  // Echo goes off before the prompt shows, so nothing typed in answer to it can be echoed (as getpass does;
  // TCSAFLUSH drops only what was typed before the prompt).
  tcsetattr(fd, TCSAFLUSH, &t);
  (void)!::write(fd, prompt, std::strlen(prompt));
  out->clear();
  bool ok = true;
  char c;
  while (true) {
    const ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = !out->empty();
      break;
    }
    if (c == '\n' || c == '\r') break;
    out->push_back(c);
  }
  tcsetattr(fd, TCSAFLUSH, &g_saved);
  g_tty_fd = -1;
  std::signal(SIGINT, old_int);
  std::signal(SIGTERM, old_term);
  return ok;
}

}  // namespace

std::string ReadPasswordLine(std::istream& in) {
  std::string line;
  if (!std::getline(in, line)) throw CtlError(kExitUsage, "--password-stdin: nothing on standard input");
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) throw CtlError(kExitUsage, "--password-stdin: the password is empty");
  return line;
}

bool StdinIsTerminal() {
  return ::isatty(STDIN_FILENO) == 1;
}

std::string PromptPasswordTwice(const std::string& user) {
  const int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    throw CtlError(kExitUsage, "no password: give --password or --password-stdin (no terminal to prompt on)");
  }
  std::string a, b;
  const std::string p1 = "password for " + user + ": ";
  const bool ok = ReadNoEcho(fd, p1.c_str(), &a) && ReadNoEcho(fd, "again: ", &b);
  ::close(fd);
  if (!ok) throw CtlError(kExitFailed, "could not read the password from the terminal");
  if (a != b) throw CtlError(kExitUsage, "the passwords differ");
  if (a.empty()) throw CtlError(kExitUsage, "the password is empty");
  return a;
}

}  // namespace parley::ctl

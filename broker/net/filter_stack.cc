#include "broker/net/filter_stack.h"

namespace parley::net {

FilterStack::FilterStack(std::vector<std::unique_ptr<Filter>> filters, ClientInput to_client)
    : filters_(std::move(filters)), to_client_(std::move(to_client)) {
  links_.reserve(filters_.size());
  for (size_t i = 0; i < filters_.size(); ++i) {
    links_.push_back(std::make_unique<Link>(*this, i));
    filters_[i]->set_sink(links_.back().get());
  }
}

void FilterStack::Link::Up(std::span<const uint8_t> bytes) {
  FilterStack& s = stack_;
  if (!s.error_.ok() || bytes.empty()) return;
  if (index_ + 1 == s.filters_.size()) {
    s.to_client_(bytes);
    return;
  }
  Status st = s.filters_[index_ + 1]->OnInput(bytes);
  if (!st.ok()) s.error_ = std::move(st);
}

void FilterStack::Link::Down(std::string_view bytes) {
  FilterStack& s = stack_;
  if (bytes.empty()) return;
  if (index_ == 0) {
    s.wire_.append(bytes);
    return;
  }
  // An upper filter's error reply (an HTTP error, a close frame) still goes down; only new input stops.
  Status st = s.filters_[index_ - 1]->Write(bytes);
  if (!st.ok() && s.error_.ok()) s.error_ = std::move(st);
}

Status FilterStack::Input(std::span<const uint8_t> bytes) {
  if (!error_.ok()) return error_;
  if (filters_.empty()) {
    to_client_(bytes);
    return Status::Ok();
  }
  Status st = filters_[0]->OnInput(bytes);
  if (!st.ok() && error_.ok()) error_ = std::move(st);
  return error_;
}

Status FilterStack::Output(std::string_view bytes) {
  if (bytes.empty()) return error_;
  if (filters_.empty()) {
    wire_.append(bytes);
    return Status::Ok();
  }
  Status st = filters_.back()->Write(bytes);
  if (!st.ok() && error_.ok()) error_ = std::move(st);
  return error_;
}

void FilterStack::Close() {
  if (closed_) return;
  closed_ = true;
  for (size_t i = filters_.size(); i-- > 0;) filters_[i]->Close();
}

bool FilterStack::ready() const {
  for (const auto& f : filters_)
    if (!f->ready()) return false;
  return true;
}

std::string_view FilterStack::peer_identity() const {
  for (const auto& f : filters_)
    if (!f->peer_identity().empty()) return f->peer_identity();
  return {};
}

}  // namespace parley::net

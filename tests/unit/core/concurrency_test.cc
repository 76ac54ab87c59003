// Several threads, one Broker: each thread owns a subscriber and a publisher Client (used only by that
// thread, as broker/net does with one loop per worker) and publishes while the others do; subscriptions
// churn on the shared TopicTree; a share group spans the threads; one more thread keeps reconnecting a
// persistent session with a different user name each time (Route reads it for the Authorizer). Checks
// that every message arrives exactly once per receiver, in order per publisher. Run under
// -DPARLEY_TSAN=ON to check for data races.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/core/client_harness.h"

namespace parley::broker {
namespace {

using mqtt::PacketType;
using mqtt::Version;
using testing::FakeLink;
using testing::FakeTransport;
using testing::MakeAck;
using testing::MakeConnect;
using testing::MakePublish;
using testing::MakeSubscribe;

constexpr int kThreads = 4;
constexpr int kPerThread = 1000;  // messages per publisher to each of the two topic families
constexpr auto kTimeout = std::chrono::seconds(120);

// Failures seen on worker threads; doctest macros are used only on the main thread.
struct Errors {
  std::mutex mu;
  std::vector<std::string> list;
  void Add(std::string e) {
    std::lock_guard lock(mu);
    if (list.size() < 20) list.push_back(std::move(e));
  }
};

// Looks at the user name it is given, as a real ACL would.
class UserAcl final : public Authorizer {
 public:
  bool Allowed(const ClientIdentity& who, std::string_view topic, Access) const override {
    if (who.username && *who.username == "blocked") return false;
    return topic.substr(0, 7) != "denied/";
  }
};

// A Client driven by exactly one thread, without doctest.
class ThreadPeer {
 public:
  ThreadPeer(Broker& b, int worker, Errors& errors)
      : link(std::make_shared<FakeLink>()), errors_(errors) {
    client = std::make_unique<Client>(b, transport, link, worker);
  }
  ~ThreadPeer() { client->OnClosed(); }

  void Send(const mqtt::Packet& p) {
    std::string bytes;
    mqtt::Encode(p, Version::kV5, &bytes);
    if (client->OnData(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size())) !=
        bytes.size())
      errors_.Add("partial consume");
  }
  std::vector<mqtt::Packet> Take() {
    std::vector<mqtt::Packet> out;
    mqtt::DecodeOptions opts;
    opts.version = Version::kV5;
    const std::string& buf = transport.out_;
    size_t off = 0;
    while (off < buf.size()) {
      mqtt::Packet p;
      auto r = mqtt::Decode(
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(buf.data()) + off, buf.size() - off), opts, &p);
      if (r.status != mqtt::DecodeStatus::kOk) {
        errors_.Add(std::string("undecodable output: ") + r.detail);
        break;
      }
      off += r.consumed;
      out.push_back(std::move(p));
    }
    transport.out_.clear();
    return out;
  }
  bool Connect(mqtt::Connect c) {
    Send(c);
    auto out = Take();
    if (out.empty() || !std::holds_alternative<mqtt::Connack>(out[0]) ||
        std::get<mqtt::Connack>(out[0]).reason_code != 0) {
      errors_.Add("connect failed: " + c.client_id);
      return false;
    }
    backlog_.assign(out.begin() + 1, out.end());
    return true;
  }
  // Pumps if woken; acks every PUBLISH; returns them.
  std::vector<mqtt::Publish> Poll() {
    const int w = link->wakes.load();
    if (w != seen_wakes_) {
      seen_wakes_ = w;
      client->Pump();
    }
    std::vector<mqtt::Packet> packets = std::move(backlog_);
    backlog_.clear();
    for (auto& p : Take()) packets.push_back(std::move(p));
    std::vector<mqtt::Publish> got;
    for (auto& p : packets) {
      if (auto* pub = std::get_if<mqtt::Publish>(&p)) {
        if (pub->qos == 1) Send(MakeAck(PacketType::kPuback, pub->packet_id));  // may pump more
        got.push_back(std::move(*pub));
      }
    }
    return got;
  }

  FakeTransport transport;
  std::shared_ptr<FakeLink> link;
  std::unique_ptr<Client> client;

 private:
  Errors& errors_;
  int seen_wakes_ = 0;
  std::vector<mqtt::Packet> backlog_;
};

// "t/<publisher>/<seq>" or "s/<publisher>/<seq>" -> (publisher, seq)
std::pair<int, int> Parse(const std::string& payload) {
  const size_t colon = payload.find(':');
  return {std::stoi(payload.substr(0, colon)), std::stoi(payload.substr(colon + 1))};
}

TEST_CASE("concurrency: many threads publishing and subscribing on one broker") {
  BrokerOptions o;
  o.sys_enabled = false;
  o.max_queued_messages = 0;  // unlimited: this test counts every message
  o.max_queued_bytes = 0;
  ManualClock clock;  // never advanced: threads only read it
  Broker broker(o, clock, kThreads + 5);
  UserAcl acl;
  broker.SetAuthorizer(&acl);
  Errors errors;

  std::latch subscribed(kThreads + 5);
  std::atomic<int> publishers_done{0};
  std::atomic<int> shared_received{0};
  std::atomic<int> receivers_done{0};
  const auto deadline = std::chrono::steady_clock::now() + kTimeout;
  auto late = [&] { return std::chrono::steady_clock::now() > deadline; };

  // Per thread: what its subscriber received from the share group (checked for exactly-once after join).
  std::vector<std::vector<std::pair<int, int>>> shared_got(kThreads);
  std::vector<int> fanout_got(kThreads, 0);

  auto worker = [&](int i) {
    ThreadPeer sub(broker, i, errors);
    ThreadPeer pub(broker, i, errors);
    mqtt::Connect sc = MakeConnect("sub-" + std::to_string(i), Version::kV5);
    sc.username = "user-" + std::to_string(i);
    if (!sub.Connect(sc) || !pub.Connect(MakeConnect("pub-" + std::to_string(i), Version::kV5))) {
      subscribed.count_down();
      return;
    }
    sub.Send(MakeSubscribe(1, "t/#", 1));
    sub.Send(MakeSubscribe(2, "$share/g/s/#", 1));
    sub.Send(MakeSubscribe(3, "denied/#", 1));  // refused by the ACL: 0x80
    {
      auto acks = sub.Take();
      if (acks.size() != 3 || std::get<mqtt::Suback>(acks[0]).reason_codes != std::vector<uint8_t>{1} ||
          std::get<mqtt::Suback>(acks[1]).reason_codes != std::vector<uint8_t>{1} ||
          std::get<mqtt::Suback>(acks[2]).reason_codes != std::vector<uint8_t>{0x80})
        errors.Add("bad SUBACKs on thread " + std::to_string(i));
    }
    subscribed.arrive_and_wait();

    std::vector<int> next_seq(kThreads, 0);  // in-order check per publisher on t/#
    int fanout = 0;
    auto drain = [&] {
      for (auto& p : sub.Poll()) {
        auto [from, seq] = Parse(p.payload);
        if (p.topic[0] == 't') {
          if (seq != next_seq[from]) {
            errors.Add("thread " + std::to_string(i) + ": from " + std::to_string(from) + " got " +
                       std::to_string(seq) + " want " + std::to_string(next_seq[from]));
          }
          next_seq[from] = seq + 1;
          ++fanout;
        } else if (p.topic[0] == 's') {
          shared_got[i].emplace_back(from, seq);
          shared_received.fetch_add(1);
        } else {
          errors.Add("unexpected topic " + p.topic);
        }
      }
    };

    uint16_t pid = 1;
    auto next_pid = [&] {
      const uint16_t id = pid;
      pid = pid == 65535 ? 1 : pid + 1;
      return id;
    };
    for (int k = 0; k < kPerThread; ++k) {
      const std::string payload = std::to_string(i) + ":" + std::to_string(k);
      pub.Send(MakePublish("t/" + std::to_string(i) + "/" + std::to_string(k % 7), payload, 1, next_pid()));
      pub.Send(MakePublish("s/" + std::to_string(i), payload, 1, next_pid()));
      pub.Send(MakePublish("denied/x", payload, 1, next_pid()));  // PUBACK 0x87, routed nowhere
      for (auto& p : pub.Take()) {
        const auto& a = std::get<mqtt::Ack>(p);
        const bool denied = a.packet_id % 3 == 0;  // ids run 1, 2, 3 per iteration (wraps in step)
        if (a.reason_code != (denied ? mqtt::rc::kNotAuthorized : mqtt::rc::kSuccess))
          errors.Add("PUBACK " + std::to_string(a.packet_id) + " reason " + std::to_string(a.reason_code));
      }
      // Subscription churn on the shared tree.
      if (k % 25 == 0) {
        const std::string f = "churn/" + std::to_string(i) + "/" + std::to_string(k);
        sub.Send(MakeSubscribe(static_cast<uint16_t>(10 + k % 1000), f, 0));
        sub.Send(mqtt::Unsubscribe{static_cast<uint16_t>(2000 + k % 1000), {f}, {}});
      }
      drain();
    }
    publishers_done.fetch_add(1);
    // Receive the rest: every t message of every publisher, and (collectively) every s message.
    const int want_fanout = kThreads * kPerThread;
    while ((fanout < want_fanout || shared_received.load() < kThreads * kPerThread) && !late()) {
      drain();
      std::this_thread::yield();
    }
    fanout_got[i] = fanout;
    receivers_done.fetch_add(1);
    // Stay responsive until everyone is done, so share-group traffic is never stranded.
    while (receivers_done.load() < kThreads && !late()) {
      drain();
      std::this_thread::yield();
    }
  };

  // Persistent sessions that keep dropping and coming back under a new user name: "roamer" on one
  // thread; "contested" on two threads that take it over from each other (Kick 0x8E on the loser).
  struct Roaming {
    std::mutex mu;
    std::set<std::pair<int, int>> got;  // unique (publisher, seq) received on t/#
    int connects = 0;
    int kicks = 0;
    size_t Size() {
      std::lock_guard lock(mu);
      return got.size();
    }
  };
  Roaming roamer_state, contested_state;
  std::atomic<int> contenders_left{2};
  const size_t want_all = static_cast<size_t>(kThreads * kPerThread);

  auto roam = [&](std::string client_id, Roaming& st, int worker, bool finisher, bool contender) {
    mqtt::Connect c = MakeConnect(client_id, Version::kV5, /*clean=*/false);
    c.props.session_expiry_interval = 0xFFFFFFFF;
    int n = 0;
    auto session = [&](bool final_phase) {
      ThreadPeer p(broker, worker, errors);
      c.username = client_id + "-" + std::to_string(++n);
      if (!p.Connect(c)) return false;
      {
        std::lock_guard lock(st.mu);
        ++st.connects;
      }
      auto collect = [&] {
        auto got = p.Poll();
        std::lock_guard lock(st.mu);
        for (auto& m : got) st.got.insert(Parse(m.payload));
      };
      for (int k = 0; final_phase ? (st.Size() < want_all && !late()) : k < (contender ? 200 : 20); ++k) {
        if (!p.link->Kicks().empty()) {
          if (p.link->Kicks() != std::vector<uint8_t>{mqtt::rc::kSessionTakenOver}) errors.Add("bad kick");
          p.client->OnKick(mqtt::rc::kSessionTakenOver);
          std::lock_guard lock(st.mu);
          ++st.kicks;
          break;
        }
        collect();
        if (final_phase) std::this_thread::yield();
      }
      return true;
    };
    {
      ThreadPeer p(broker, worker, errors);
      c.username = client_id + "-0";
      if (p.Connect(c)) p.Send(MakeSubscribe(1, "t/#", 1));
    }
    subscribed.arrive_and_wait();
    auto kicked = [&] {
      std::lock_guard lock(st.mu);
      return st.kicks > 0;
    };
    // Contenders keep fighting until at least one takeover happened.
    while ((publishers_done.load() < kThreads || (contender && !kicked())) && !late())
      if (!session(false)) break;
    if (contender) contenders_left.fetch_sub(1);
    if (!finisher) return;
    while (contender && contenders_left.load() > 0 && !late()) std::this_thread::yield();
    while (st.Size() < want_all && !late()) session(true);
  };

  // Two threads take "stomp" from each other with clean start and subscribe at once, before looking at
  // their kicks (as a connection does with packets it read before the Kick arrived). Ended sessions
  // must not be left in the tree.
  std::atomic<int> stomps{0};
  auto stomper = [&](int worker) {
    subscribed.arrive_and_wait();
    for (int n = 0; (publishers_done.load() < kThreads || n < 50) && !late(); ++n) {
      ThreadPeer p(broker, worker, errors);
      if (!p.Connect(MakeConnect("stomp", Version::kV5, /*clean=*/true))) break;
      for (int y = 0; y < 100; ++y) std::this_thread::yield();  // let the other one take over
      for (int k = 0; k < 4; ++k) p.Send(MakeSubscribe(static_cast<uint16_t>(k + 1), "stomp/" + std::to_string(k), 0));
      if (!p.link->Kicks().empty()) {
        p.client->OnKick(mqtt::rc::kSessionTakenOver);
        stomps.fetch_add(1);
      }
    }
  };

  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(worker, i);
  threads.emplace_back(stomper, kThreads + 3);
  threads.emplace_back(stomper, kThreads + 4);
  threads.emplace_back(roam, "roamer", std::ref(roamer_state), kThreads, true, false);
  threads.emplace_back(roam, "contested", std::ref(contested_state), kThreads + 1, true, true);
  threads.emplace_back(roam, "contested", std::ref(contested_state), kThreads + 2, false, true);
  for (auto& t : threads) t.join();

  for (auto& e : errors.list) FAIL_CHECK(e);
  CHECK_FALSE(late());
  for (int i = 0; i < kThreads; ++i) CHECK(fanout_got[i] == kThreads * kPerThread);
  std::set<std::pair<int, int>> shared_all;
  size_t shared_total = 0;
  for (auto& v : shared_got) {
    shared_total += v.size();
    shared_all.insert(v.begin(), v.end());
  }
  CHECK(shared_total == want_all);  // exactly once in the group
  CHECK(shared_all.size() == want_all);
  CHECK(roamer_state.got.size() == want_all);
  CHECK(roamer_state.connects > 1);
  CHECK(contested_state.got.size() == want_all);
  CHECK(contested_state.kicks > 0);
  MESSAGE("roamer connected " << roamer_state.connects << " times; contested " << contested_state.connects
                              << " times with " << contested_state.kicks << " takeovers; " << stomps.load()
                              << " clean-start takeovers");

  const StatsSnapshot s = broker.Stats();
  CHECK(s.messages_received == static_cast<uint64_t>(3 * kThreads * kPerThread));
  CHECK(s.dropped_total == 0);
  CHECK(s.clients_connected == 0);
  CHECK(broker.tree().SubscriptionCount() == 2);  // the two persistent sessions
  CHECK(broker.SessionCount() == 2);
}

}  // namespace
}  // namespace parley::broker

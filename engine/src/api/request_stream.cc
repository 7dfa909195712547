#include "kvstore/engine/request_stream.h"

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace kvstore::engine {

namespace asio = boost::asio;

RequestStream::RequestStream(asio::any_io_executor executor)
    : executor_(executor), wakeup_(executor) {}

void RequestStream::Push(StreamEvent event) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(event));
  }
  // The reader checks the queue and starts its wait without leaving the
  // executor, so a cancel posted there cannot slip between the two.
  asio::post(executor_, [self = shared_from_this()] { self->wakeup_.cancel(); });
}

asio::awaitable<StreamEvent> RequestStream::Next() {
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!events_.empty()) {
        StreamEvent e = std::move(events_.front());
        events_.pop_front();
        co_return e;
      }
    }
    wakeup_.expires_at(std::chrono::steady_clock::time_point::max());
    boost::system::error_code ec;
    co_await wakeup_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace kvstore::engine

// TextStream: turns the bytes of generated tokens into text deltas that are
// safe to send: valid UTF-8 (a character split across tokens is held back
// until it is complete; a byte that can never start or continue a character
// becomes U+FFFD), and never part of a stop string (text that could still
// become a stop string is held back; a matched stop string and everything
// after it is dropped). The text of a completion is by construction the
// concatenation of its deltas, so a streamed answer equals the non-streamed one.
//
// Thread-safety: not thread-safe; one per generated sequence.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kvstore::engine {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stop_strings = {});

  // Appends raw bytes; returns the text that may be sent now. Sets *stopped
  // when a stop string matched (the delta then ends just before it, and the
  // stream takes nothing more).
  std::string Add(std::string_view bytes, bool* stopped);
  // The end of generation: whatever was held back (an incomplete character
  // becomes U+FFFD per byte).
  std::string Finish();
  bool stopped() const { return stopped_; }

 private:
  std::string Release(bool at_end);

  std::vector<std::string> stops_;
  std::string raw_;   // bytes of a character not yet complete
  std::string held_;  // valid text held back as a possible stop-string prefix
  bool stopped_ = false;
};

// Valid UTF-8 of bytes: each byte of an invalid or truncated sequence becomes U+FFFD.
std::string SanitizeUtf8(std::string_view bytes);
// Length of the longest prefix of bytes that does not end inside a character
// which later bytes could still complete.
size_t CompleteUtf8Prefix(std::string_view bytes);

}  // namespace kvstore::engine

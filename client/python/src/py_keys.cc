#include "py_keys.h"

#include <pybind11/stl.h>

#include <cstring>
#include <string>

#include "kvstore/types.h"
#include "py_buffers.h"
#include "py_errors.h"

namespace py = pybind11;
using namespace pybind11::literals;

namespace kvstore::python {
namespace {

HashKind HashFromPy(const std::string& name) {
  if (name == "sha256") return HashKind::kSha256;
  if (name == "xxh3") return HashKind::kXxh3;
  Raise(StatusCode::kInvalidArgument, "hash must be 'sha256' or 'xxh3', got '" + name + "'");
}

bool IsSingleKey(py::handle obj) {
  return py::isinstance<py::bytes>(obj) || py::isinstance<py::str>(obj) ||
         py::isinstance<py::bytearray>(obj) || PyMemoryView_Check(obj.ptr());
}

// Token ids from a list of ints or a buffer of integers (NumPy int32/int64/uint32, array.array).
std::vector<uint32_t> TokensFromPy(py::handle obj) {
  std::vector<uint32_t> out;
  if (PyObject_CheckBuffer(obj.ptr()) && !py::isinstance<py::bytes>(obj)) {
    py::buffer_info info = py::reinterpret_borrow<py::buffer>(obj).request();
    if (info.ndim != 1) Raise(StatusCode::kInvalidArgument, "token_ids must be one-dimensional");
    char f = info.format.empty() ? '?' : info.format.back();
    bool is_signed = f == 'b' || f == 'h' || f == 'i' || f == 'l' || f == 'q';
    bool is_unsigned = f == 'B' || f == 'H' || f == 'I' || f == 'L' || f == 'Q';
    if (!is_signed && !is_unsigned) {
      Raise(StatusCode::kInvalidArgument,
            "token_ids must hold integers, got buffer format '" + info.format + "'");
    }
    out.reserve(static_cast<size_t>(info.shape[0]));
    auto* base = static_cast<const char*>(info.ptr);
    for (py::ssize_t i = 0; i < info.shape[0]; ++i) {
      const char* p = base + i * info.strides[0];
      int64_t v = 0;
      uint64_t u = 0;
      switch (info.itemsize) {
        case 1:
          is_signed ? v = *reinterpret_cast<const int8_t*>(p)
                    : u = *reinterpret_cast<const uint8_t*>(p);
          break;
        case 2:
          is_signed ? v = *reinterpret_cast<const int16_t*>(p)
                    : u = *reinterpret_cast<const uint16_t*>(p);
          break;
        case 4:
          is_signed ? v = *reinterpret_cast<const int32_t*>(p)
                    : u = *reinterpret_cast<const uint32_t*>(p);
          break;
        case 8:
          std::memcpy(is_signed ? static_cast<void*>(&v) : static_cast<void*>(&u), p, 8);
          break;
        default:
          Raise(StatusCode::kInvalidArgument, "token_ids: unsupported integer size");
      }
      if (is_signed) {
        if (v < 0 || v > 0xffffffffll) {
          Raise(StatusCode::kInvalidArgument, "token id " + std::to_string(v) + " at " +
                                                  std::to_string(i) + " is outside 0..2^32-1");
        }
        u = static_cast<uint64_t>(v);
      } else if (u > 0xffffffffull) {
        Raise(StatusCode::kInvalidArgument, "token id " + std::to_string(u) + " at " +
                                                std::to_string(i) + " is outside 0..2^32-1");
      }
      out.push_back(static_cast<uint32_t>(u));
    }
    return out;
  }
  if (!py::isinstance<py::sequence>(obj) && !py::isinstance<py::iterable>(obj)) {
    Raise(StatusCode::kInvalidArgument,
          "token_ids must be a sequence of ints, got " + TypeName(obj));
  }
  size_t i = 0;
  for (py::handle t : py::reinterpret_borrow<py::iterable>(obj)) {
    long long v = 0;
    try {
      v = t.cast<long long>();
    } catch (const py::cast_error&) {
      Raise(StatusCode::kInvalidArgument,
            "token_ids item " + std::to_string(i) + " is not an int (" + TypeName(t) + ")");
    }
    if (v < 0 || v > 0xffffffffll) {
      Raise(StatusCode::kInvalidArgument,
            "token id " + std::to_string(v) + " at " + std::to_string(i) + " is outside 0..2^32-1");
    }
    out.push_back(static_cast<uint32_t>(v));
    ++i;
  }
  return out;
}

std::vector<std::byte> BytesFromPy(py::handle obj) {
  HeldBuffer b = HeldBuffer::Acquire(obj, /*writable=*/false);
  return {b.bytes().begin(), b.bytes().end()};
}

}  // namespace

Key KeyFromPy(py::handle obj) {
  if (py::isinstance<py::str>(obj)) {
    auto r = Key::FromHex(obj.cast<std::string>());
    return Unwrap(std::move(r));
  }
  if (PyObject_CheckBuffer(obj.ptr())) {
    HeldBuffer b = HeldBuffer::Acquire(obj, /*writable=*/false);
    if (b.bytes().size() != Key::kSize) {
      Raise(StatusCode::kInvalidArgument, "a key is 32 bytes, got " +
                                              std::to_string(b.bytes().size()) +
                                              " (use kvstore.block_keys to make keys)");
    }
    return Unwrap(Key::FromBytes(b.bytes()));
  }
  Raise(StatusCode::kInvalidArgument,
        "a key is 32 bytes or 64 hex characters, got " + TypeName(obj));
}

std::vector<Key> KeysFromPy(py::handle seq) {
  if (IsSingleKey(seq)) {
    Raise(StatusCode::kInvalidArgument,
          "expected a list of keys, got a single key: wrap it in a list ([key])");
  }
  std::vector<Key> out;
  if (py::isinstance<py::sequence>(seq)) out.reserve(py::len(seq));
  for (py::handle k : py::reinterpret_borrow<py::iterable>(seq)) out.push_back(KeyFromPy(k));
  return out;
}

py::bytes KeyToPy(const Key& key) {
  return py::bytes(reinterpret_cast<const char*>(key.bytes.data()), Key::kSize);
}

void BindKeys(py::module_& m) {
  m.def(
      "block_keys",
      [](const std::string& ns, uint32_t block_size, py::handle token_ids,
         const std::string& hash) {
        if (block_size == 0) Raise(StatusCode::kInvalidArgument, "block_size must be > 0");
        std::vector<uint32_t> tokens = TokensFromPy(token_ids);
        KeyOptions o{.ns = ns, .block_size = block_size, .hash = HashFromPy(hash)};
        std::vector<Key> keys;
        {
          py::gil_scoped_release release;
          keys = PrefixKeys(tokens, o);
        }
        py::list out;
        for (const Key& k : keys) out.append(KeyToPy(k));
        return out;
      },
      "namespace"_a, "block_size"_a, "token_ids"_a, "hash"_a = "sha256",
      R"doc(Keys of every full block of ``token_ids``: len(token_ids) // block_size
32-byte keys, the chained hash of the prefix up to and including each block,
in ``namespace`` (name the model, KV layout, dtype and parallel rank there).
The same function as the C++ library's PrefixKeys, so every process and
language computes the same keys. hash: 'sha256' (default) or 'xxh3' (trusted
deployments only).)doc");
  m.def(
      "namespace_seed",
      [](const std::string& ns, const std::string& hash) {
        return KeyToPy(NamespaceSeed(ns, HashFromPy(hash)));
      },
      "namespace"_a, "hash"_a = "sha256", "The chain's start h_-1 for ``namespace``.");
  m.def(
      "chain_key",
      [](py::handle parent, py::handle block_tokens, uint32_t block_size, py::handle extra,
         const std::string& hash) {
        Key p = KeyFromPy(parent);
        std::vector<uint32_t> tokens = TokensFromPy(block_tokens);
        std::vector<std::byte> e = extra.is_none() ? std::vector<std::byte>{} : BytesFromPy(extra);
        return KeyToPy(ChainKey(p, tokens, block_size, e, HashFromPy(hash)));
      },
      "parent"_a, "block_tokens"_a, "block_size"_a, "extra"_a = py::none(), "hash"_a = "sha256",
      "One chain step H(parent | block_size | tokens | extra); extra (bytes) separates e.g. "
      "per-layer keys of one block.");
  m.def(
      "chain_keys",
      [](py::handle parents, py::handle token_ids, uint32_t block_size, py::handle extra,
         const std::string& hash) {
        if (block_size == 0) Raise(StatusCode::kInvalidArgument, "block_size must be > 0");
        std::vector<Key> ps = KeysFromPy(parents);
        std::vector<uint32_t> tokens = TokensFromPy(token_ids);
        if (tokens.size() < ps.size() * block_size) {
          Raise(StatusCode::kInvalidArgument, "chain_keys: " + std::to_string(ps.size()) +
                                                  " parents need " +
                                                  std::to_string(ps.size() * block_size) +
                                                  " tokens, got " + std::to_string(tokens.size()));
        }
        std::vector<std::byte> e = extra.is_none() ? std::vector<std::byte>{} : BytesFromPy(extra);
        HashKind h = HashFromPy(hash);
        std::vector<Key> out(ps.size());
        {
          py::gil_scoped_release release;
          for (size_t i = 0; i < ps.size(); ++i) {
            out[i] = ChainKey(ps[i], std::span(tokens).subspan(i * block_size, block_size),
                              block_size, e, h);
          }
        }
        py::list l;
        for (const Key& k : out) l.append(KeyToPy(k));
        return l;
      },
      "parents"_a, "token_ids"_a, "block_size"_a, "extra"_a = py::none(), "hash"_a = "sha256",
      "chain_key for consecutive blocks at once: block i of token_ids chained onto "
      "parents[i] with the same extra.");
  m.def(
      "key_hex", [](py::handle key) { return KeyFromPy(key).ToHex(); }, "key"_a,
      "64 lowercase hex characters of a key.");
  m.def(
      "value_checksum",
      [](py::handle value) {
        HeldBuffer b = HeldBuffer::Acquire(value, /*writable=*/false);
        return ValueChecksum(b.bytes());
      },
      "value"_a, "XXH3-64 of a value, as the store records it (EntryMeta.checksum).");
}

}  // namespace kvstore::python

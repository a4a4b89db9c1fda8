// SPDX-License-Identifier: BSL-1.0
// concur::Codec<T>: how arguments and results cross a process boundary.
//
// The processes executor sends a registered call as its name plus its
// arguments, and gets back the result, encoded by this compact binary codec
// (native byte order: both ends are the same program on the same machine).
// A binary codec, not Boost.JSON: encoding an (int, string) argument pair and
// an int result costs tens of nanoseconds here against about a microsecond
// through boost::json::value_from/serialize/parse/value_to (measured by
// concur-bench-processes), and the per-call budget is a few microseconds.
//
// Built in: arithmetic types, enums, std::string, std::chrono::duration,
// std::vector, std::array, std::pair, std::tuple, std::optional, std::map,
// std::monostate. Your own type, two ways (pick one):
//
// ```cpp
// #include <string>
//
// // 1. Two functions found by argument-dependent lookup (in T's namespace):
// namespace geo {
// struct Point { int x; int y; std::string label; };
// void concur_encode(concur::Writer& w, const Point& p) { w.put(p.x, p.y, p.label); }
// Point concur_decode(concur::Reader& r, concur::type_tag<Point>) {
//   return {r.get<int>(), r.get<int>(), r.get<std::string>()};  // braces: left to right
// }
// }  // namespace geo
// static_assert(concur::Encodable<geo::Point>);
//
// // 2. Or a specialisation of concur::Codec:
// struct Size { int w; int h; };
// template <> struct concur::Codec<Size> {
//   static void encode(concur::Writer& w, const Size& s) { w.put(s.w, s.h); }
//   static Size decode(concur::Reader& r) { return {r.get<int>(), r.get<int>()}; }
// };
// static_assert(concur::Encodable<Size>);
// ```
//
// A registered function whose parameter or result types have no codec still
// runs on every in-process executor; on `processes` its calls fail with a
// UsageError naming the function.
#pragma once

#include <array>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "concur/errors.hpp"

namespace concur {

template <class T>
struct type_tag {};

template <class T>
struct Codec;

class Writer;
class Reader;

/// True when values of T can cross a process boundary.
template <class T>
concept Encodable = requires(Writer& w, Reader& r, const T& v) {
  Codec<T>::encode(w, v);
  { Codec<T>::decode(r) } -> std::same_as<T>;
};

/// Appends encoded values to a byte string.
class Writer {
 public:
  explicit Writer(std::string& out) noexcept : out_(out) {}
  /// Appends `n` raw bytes.
  void bytes(const void* p, std::size_t n) { out_.append(static_cast<const char*>(p), n); }
  /// Encodes each value in turn.
  template <class... Ts>
  void put(const Ts&... vs) {
    (Codec<Ts>::encode(*this, vs), ...);
  }
  std::string& buffer() noexcept { return out_; }

 private:
  std::string& out_;
};

/// Reads encoded values back; throws concur::Error on truncated input.
class Reader {
 public:
  explicit Reader(std::string_view in) noexcept : in_(in) {}
  /// The next `n` raw bytes.
  std::string_view bytes(std::size_t n) {
    if (n > in_.size() - pos_) throw Error("concur codec: truncated data while decoding");
    std::string_view out = in_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  template <class T>
  T get() {
    return Codec<T>::decode(*this);
  }
  std::size_t remaining() const noexcept { return in_.size() - pos_; }

 private:
  std::string_view in_;
  std::size_t pos_ = 0;
};

namespace detail {
template <class T>
concept AdlEncodable = requires(Writer& w, Reader& r, const T& v) {
  concur_encode(w, v);
  { concur_decode(r, type_tag<T>{}) } -> std::same_as<T>;
};
}  // namespace detail

// The primary template forwards to concur_encode/concur_decode found by ADL.
template <class T>
struct Codec {
  static void encode(Writer& w, const T& v) requires detail::AdlEncodable<T> {
    concur_encode(w, v);
  }
  static T decode(Reader& r) requires detail::AdlEncodable<T> {
    return concur_decode(r, type_tag<T>{});
  }
};

template <class T>
requires(std::is_arithmetic_v<T> || std::is_enum_v<T>) struct Codec<T> {
  static void encode(Writer& w, const T& v) { w.bytes(&v, sizeof v); }
  static T decode(Reader& r) {
    T v;
    std::memcpy(&v, r.bytes(sizeof v).data(), sizeof v);
    return v;
  }
};

template <>
struct Codec<std::string> {
  static void encode(Writer& w, const std::string& s) {
    w.put(static_cast<std::uint32_t>(s.size()));
    w.bytes(s.data(), s.size());
  }
  static std::string decode(Reader& r) {
    const auto n = r.get<std::uint32_t>();
    return std::string(r.bytes(n));
  }
};

template <>
struct Codec<std::monostate> {
  static void encode(Writer&, const std::monostate&) {}
  static std::monostate decode(Reader&) { return {}; }
};

template <class Rep, class Period>
struct Codec<std::chrono::duration<Rep, Period>> {
  using D = std::chrono::duration<Rep, Period>;
  static void encode(Writer& w, const D& d) { w.put(d.count()); }
  static D decode(Reader& r) { return D(r.get<Rep>()); }
};

template <class T, class A>
struct Codec<std::vector<T, A>> {
  static void encode(Writer& w, const std::vector<T, A>& v) requires Encodable<T> {
    w.put(static_cast<std::uint64_t>(v.size()));
    if constexpr (std::is_arithmetic_v<T>) {
      w.bytes(v.data(), v.size() * sizeof(T));
    } else {
      for (const T& x : v) Codec<T>::encode(w, x);
    }
  }
  static std::vector<T, A> decode(Reader& r) requires Encodable<T> {
    const auto n = r.get<std::uint64_t>();
    std::vector<T, A> v;
    if constexpr (std::is_arithmetic_v<T>) {
      if (n > r.remaining() / sizeof(T)) throw Error("concur codec: truncated data while decoding");
      v.resize(n);
      std::memcpy(v.data(), r.bytes(n * sizeof(T)).data(), n * sizeof(T));
    } else {
      if (n > r.remaining()) throw Error("concur codec: truncated data while decoding");
      v.reserve(n);
      for (std::uint64_t i = 0; i < n; ++i) v.push_back(Codec<T>::decode(r));
    }
    return v;
  }
};

template <class T, std::size_t N>
struct Codec<std::array<T, N>> {
  static void encode(Writer& w, const std::array<T, N>& a) requires Encodable<T> {
    for (const T& x : a) Codec<T>::encode(w, x);
  }
  static std::array<T, N> decode(Reader& r) requires Encodable<T> {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return std::array<T, N>{((void)I, Codec<T>::decode(r))...};
    }
    (std::make_index_sequence<N>{});
  }
};

template <class A, class B>
struct Codec<std::pair<A, B>> {
  static void encode(Writer& w, const std::pair<A, B>& p) requires(Encodable<A>&& Encodable<B>) {
    w.put(p.first, p.second);
  }
  static std::pair<A, B> decode(Reader& r) requires(Encodable<A>&& Encodable<B>) {
    A a = r.get<A>();
    return {std::move(a), r.get<B>()};
  }
};

template <class... Ts>
struct Codec<std::tuple<Ts...>> {
  static void encode(Writer& w, const std::tuple<Ts...>& t) requires(Encodable<Ts>&&...) {
    std::apply([&](const Ts&... vs) { w.put(vs...); }, t);
  }
  static std::tuple<Ts...> decode(Reader& r) requires(Encodable<Ts>&&...) {
    return std::tuple<Ts...>{r.get<Ts>()...};  // braced: evaluated left to right
  }
};

template <class T>
struct Codec<std::optional<T>> {
  static void encode(Writer& w, const std::optional<T>& o) requires Encodable<T> {
    w.put(o.has_value());
    if (o) w.put(*o);
  }
  static std::optional<T> decode(Reader& r) requires Encodable<T> {
    if (!r.get<bool>()) return std::nullopt;
    return r.get<T>();
  }
};

template <class K, class V, class C, class A>
struct Codec<std::map<K, V, C, A>> {
  using M = std::map<K, V, C, A>;
  static void encode(Writer& w, const M& m) requires(Encodable<K>&& Encodable<V>) {
    w.put(static_cast<std::uint64_t>(m.size()));
    for (const auto& [k, v] : m) w.put(k, v);
  }
  static M decode(Reader& r) requires(Encodable<K>&& Encodable<V>) {
    const auto n = r.get<std::uint64_t>();
    M m;
    for (std::uint64_t i = 0; i < n; ++i) {
      K k = r.get<K>();
      m.emplace(std::move(k), r.get<V>());
    }
    return m;
  }
};

}  // namespace concur

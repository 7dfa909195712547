#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>

#include <fmt/format.h>

#include "loadgen.h"

namespace kvstore::engine::loadgen {

namespace {

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p / 100.0 * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

double Mean(const std::vector<double>& v) {
  return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / v.size();
}

}  // namespace

Summary Summarize(const std::vector<Outcome>& outcomes, double wall_seconds) {
  Summary s;
  std::vector<double> ttft, itl, e2e;
  double tokens = 0;
  for (const Outcome& o : outcomes) {
    if (o.status != 200 || !o.error.empty()) {
      s.failed++;
      continue;
    }
    s.ok++;
    ttft.push_back(o.ttft);
    e2e.push_back(o.e2e);
    itl.insert(itl.end(), o.itl.begin(), o.itl.end());
    tokens += o.tokens.size();
  }
  s.ttft_mean = Mean(ttft);
  s.ttft_p50 = Percentile(ttft, 50);
  s.ttft_p99 = Percentile(ttft, 99);
  s.itl_mean = Mean(itl);
  s.itl_p50 = Percentile(itl, 50);
  s.itl_p99 = Percentile(itl, 99);
  s.e2e_mean = Mean(e2e);
  s.tokens_per_second = wall_seconds > 0 ? tokens / wall_seconds : 0;
  return s;
}

std::string FormatSummary(const std::string& label, double qps, const Summary& s) {
  return fmt::format(
      "{:<14} qps {:>5.2f}  ok {:>3} failed {:>2}  TTFT ms mean/p50/p99 {:>7.1f} {:>7.1f} {:>7.1f}"
      "  ITL ms mean/p50/p99 {:>6.2f} {:>6.2f} {:>7.2f}  e2e ms {:>7.1f}  {:>6.1f} tok/s",
      label, qps, s.ok, s.failed, s.ttft_mean * 1e3, s.ttft_p50 * 1e3, s.ttft_p99 * 1e3,
      s.itl_mean * 1e3, s.itl_p50 * 1e3, s.itl_p99 * 1e3, s.e2e_mean * 1e3, s.tokens_per_second);
}

namespace {

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

template <typename F>
std::vector<double> Field(const std::vector<Summary>& rounds, F f) {
  std::vector<double> v;
  for (const Summary& s : rounds) v.push_back(f(s));
  return v;
}

}  // namespace

std::string FormatRoundsTable(const Setups& setups, const PlotPoint& p) {
  std::string out = fmt::format(
      "--- qps {:.2f}, median of {} rounds (ms); ratio = setup / disaggregated\n"
      "{:<16} {:>8} {:>8} {:>8}   {:>7} {:>7} {:>7} {:>17}   {:>5} {:>5} {:>5} {:>5} {:>5} {:>5}\n",
      p.qps, p.rounds.empty() ? 0 : p.rounds[0].size(), "setup", "TTFTmean", "TTFTp50", "TTFTp99",
      "ITLmean", "ITLp50", "ITLp99", "ITLp99 min-max", "TTm", "TT50", "TT99", "ITm", "IT50",
      "IT99");
  const size_t base = setups.size() - 1;
  auto med = [&](size_t i, double Summary::*m) {
    return Median(Field(p.rounds[i], [m](const Summary& s) { return s.*m; })) * 1e3;
  };
  double Summary::*const fields[] = {&Summary::ttft_mean, &Summary::ttft_p50, &Summary::ttft_p99,
                                     &Summary::itl_mean,  &Summary::itl_p50,  &Summary::itl_p99};
  for (size_t i = 0; i < setups.size(); ++i) {
    auto p99 = Field(p.rounds[i], [](const Summary& s) { return s.itl_p99 * 1e3; });
    int failed = 0;
    for (const Summary& s : p.rounds[i]) failed += s.failed;
    out += fmt::format(
        "{:<16} {:>8.1f} {:>8.1f} {:>8.1f}   {:>7.2f} {:>7.2f} {:>7.2f} {:>8.2f}-{:<8.2f}",
        setups[i].first, med(i, fields[0]), med(i, fields[1]), med(i, fields[2]), med(i, fields[3]),
        med(i, fields[4]), med(i, fields[5]), *std::min_element(p99.begin(), p99.end()),
        *std::max_element(p99.begin(), p99.end()));
    for (auto f : fields) {
      const double b = med(base, f);
      out += fmt::format(" {:>5.2f}", b > 0 ? med(i, f) / b : 0.0);
    }
    out += failed ? fmt::format("  ({} failed requests)\n", failed) : "\n";
  }
  return out;
}

Status PlotItl(const Setups& setups, const std::vector<PlotPoint>& points, const std::string& png,
               const std::string& title) {
  namespace fs = std::filesystem;
  fs::path base = fs::path(png).replace_extension();
  const std::string dat = base.string() + ".dat", gp = base.string() + ".gp";
  {
    std::ofstream d(dat);
    d << "# qps, then per setup: median p99 ITL ms, min, max";
    for (const auto& s : setups) d << " " << s.first;
    d << "\n";
    for (const PlotPoint& p : points) {
      d << p.qps;
      for (size_t i = 0; i < setups.size(); ++i) {
        auto v = Field(p.rounds[i], [](const Summary& s) { return s.itl_p99 * 1e3; });
        d << fmt::format(" {:.3f} {:.3f} {:.3f}", Median(v), *std::min_element(v.begin(), v.end()),
                         *std::max_element(v.begin(), v.end()));
      }
      d << "\n";
    }
  }
  {
    std::ofstream g(gp);
    g << "set terminal png size 960,540\n"
      << "set output '" << png << "'\n"
      << "set title '" << title << "'\n"
      << "set xlabel 'request rate (QPS)'\nset ylabel 'p99 inter-token latency (ms)'\n"
      << "set key top left\nset grid\nset logscale y\nplot ";
    for (size_t i = 0; i < setups.size(); ++i) {
      const int col = 2 + 3 * static_cast<int>(i);
      g << (i ? ", \\\n     " : "") << "'" << dat << "' using 1:" << col << ":" << col + 1 << ":"
        << col + 2 << " with yerrorlines lw 2 title '" << setups[i].first << "'";
    }
    g << "\n";
  }
  std::string cmd = "gnuplot '" + gp + "' 2>&1";
  int rc = std::system(cmd.c_str());
  if (rc != 0)
    return Status::Unavailable("gnuplot failed (exit " + std::to_string(rc) + ") on " + gp +
                               "; install gnuplot-nox (deploy/install-deps.sh) or plot " + dat +
                               " yourself");
  return Status::Ok();
}

}  // namespace kvstore::engine::loadgen

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

Status PlotItl(const std::vector<PlotPoint>& points, const std::string& png,
               const std::string& title) {
  namespace fs = std::filesystem;
  fs::path base = fs::path(png).replace_extension();
  const std::string dat = base.string() + ".dat", gp = base.string() + ".gp";
  {
    std::ofstream d(dat);
    d << "# qps coloc_itl_p50_ms coloc_itl_p99_ms disagg_itl_p50_ms disagg_itl_p99_ms "
         "coloc_ttft_p99_ms disagg_ttft_p99_ms\n";
    for (const PlotPoint& p : points)
      d << fmt::format("{} {:.3f} {:.3f} {:.3f} {:.3f} {:.3f} {:.3f}\n", p.qps,
                       p.colocated.itl_p50 * 1e3, p.colocated.itl_p99 * 1e3,
                       p.disaggregated.itl_p50 * 1e3, p.disaggregated.itl_p99 * 1e3,
                       p.colocated.ttft_p99 * 1e3, p.disaggregated.ttft_p99 * 1e3);
  }
  {
    std::ofstream g(gp);
    g << "set terminal png size 960,540\n"
      << "set output '" << png << "'\n"
      << "set title '" << title << "'\n"
      << "set xlabel 'request rate (QPS)'\nset ylabel 'inter-token latency (ms)'\n"
      << "set key top left\nset grid\nset logscale y\n"
      << "plot '" << dat << "' using 1:3 with linespoints lw 2 title 'colocated p99', \\\n"
      << "     '" << dat << "' using 1:5 with linespoints lw 2 title 'disaggregated p99', \\\n"
      << "     '" << dat << "' using 1:2 with linespoints dt 2 title 'colocated p50', \\\n"
      << "     '" << dat << "' using 1:4 with linespoints dt 2 title 'disaggregated p50'\n";
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

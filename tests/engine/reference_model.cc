#include "reference_model.h"

#include <algorithm>
#include <cmath>

namespace kvstore::engine::testing {
namespace {

using Mat = std::vector<std::vector<double>>;  // [tokens][features]

Mat Linear(const Mat& x, const std::vector<float>& w, int out, int in) {
  Mat y(x.size(), std::vector<double>(out));
  for (size_t t = 0; t < x.size(); ++t)
    for (int o = 0; o < out; ++o) {
      double s = 0;
      for (int i = 0; i < in; ++i) s += x[t][i] * w[size_t(o) * in + i];
      y[t][o] = s;
    }
  return y;
}

Mat RmsNorm(const Mat& x, const std::vector<float>& w, double eps) {
  Mat y = x;
  for (auto& row : y) {
    double ss = 0;
    for (double v : row) ss += v * v;
    const double inv = 1.0 / std::sqrt(ss / row.size() + eps);
    for (size_t i = 0; i < row.size(); ++i) row[i] *= inv * w[i];
  }
  return y;
}

}  // namespace

double ReferenceInvFreq(const ModelConfig& c, int i) {
  const double inv = std::pow(double(c.rope_theta), -2.0 * i / c.head_dim);
  const double factor = c.rope_factor;
  switch (c.rope_scaling) {
    case kernels::RopeScaling::kNone:
      return inv;
    case kernels::RopeScaling::kLinear:  // transformers: inv_freq / factor
      return inv / factor;
    case kernels::RopeScaling::kLlama3: {  // transformers: _compute_llama3_parameters
      const double old_len = c.rope_original_max_position;
      const double low_wavelen = old_len / c.rope_low_freq_factor;
      const double high_wavelen = old_len / c.rope_high_freq_factor;
      const double wavelen = 2 * M_PI / inv;
      const double scaled = wavelen > low_wavelen ? inv / factor : inv;
      const double smooth = (old_len / wavelen - c.rope_low_freq_factor) /
                            (c.rope_high_freq_factor - c.rope_low_freq_factor);
      const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
      return medium ? (1 - smooth) * scaled / factor + smooth * scaled : scaled;
    }
  }
  return inv;
}

namespace {

// HF rotate_half RoPE on every head of every token; token t sits at position t.
void Rope(Mat& x, int heads, int hd, const ModelConfig& c) {
  for (size_t t = 0; t < x.size(); ++t)
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < hd / 2; ++i) {
        const double a = double(t) * ReferenceInvFreq(c, i);
        double& x0 = x[t][h * hd + i];
        double& x1 = x[t][h * hd + i + hd / 2];
        const double y0 = x0 * std::cos(a) - x1 * std::sin(a);
        const double y1 = x1 * std::cos(a) + x0 * std::sin(a);
        x0 = y0;
        x1 = y1;
      }
}

}  // namespace

std::vector<float> ReferenceLogits(const ModelConfig& c, const ModelWeights& w,
                                   std::span<const int32_t> tokens) {
  const int n = static_cast<int>(tokens.size()), h = c.hidden_size, hd = c.head_dim;
  const int qd = c.num_heads * hd, kvd = c.num_kv_heads * hd, f = c.intermediate_size;
  Mat x(n, std::vector<double>(h));
  for (int t = 0; t < n; ++t)
    for (int i = 0; i < h; ++i) x[t][i] = w.embed[size_t(tokens[t]) * h + i];
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    Mat xn = RmsNorm(x, lw.attn_norm, c.rms_norm_eps);
    Mat q = Linear(xn, lw.wq, qd, h), k = Linear(xn, lw.wk, kvd, h), v = Linear(xn, lw.wv, kvd, h);
    Rope(q, c.num_heads, hd, c);
    Rope(k, c.num_kv_heads, hd, c);
    Mat attn(n, std::vector<double>(qd, 0.0));
    const int group = c.num_heads / c.num_kv_heads;
    for (int t = 0; t < n; ++t)
      for (int hh = 0; hh < c.num_heads; ++hh) {
        const int kvh = hh / group;
        std::vector<double> s(t + 1);
        for (int j = 0; j <= t; ++j) {
          double d = 0;
          for (int e = 0; e < hd; ++e) d += q[t][hh * hd + e] * k[j][kvh * hd + e];
          s[j] = d / std::sqrt(double(hd));
        }
        const double mx = *std::max_element(s.begin(), s.end());
        double sum = 0;
        for (auto& e : s) sum += (e = std::exp(e - mx));
        for (int j = 0; j <= t; ++j)
          for (int e = 0; e < hd; ++e) attn[t][hh * hd + e] += s[j] / sum * v[j][kvh * hd + e];
      }
    Mat o = Linear(attn, lw.wo, h, qd);
    for (int t = 0; t < n; ++t)
      for (int i = 0; i < h; ++i) x[t][i] += o[t][i];
    xn = RmsNorm(x, lw.mlp_norm, c.rms_norm_eps);
    Mat g = Linear(xn, lw.w_gate, f, h), u = Linear(xn, lw.w_up, f, h);
    for (int t = 0; t < n; ++t)
      for (int i = 0; i < f; ++i) g[t][i] = g[t][i] / (1.0 + std::exp(-g[t][i])) * u[t][i];
    Mat d = Linear(g, lw.w_down, h, f);
    for (int t = 0; t < n; ++t)
      for (int i = 0; i < h; ++i) x[t][i] += d[t][i];
  }
  Mat last = RmsNorm(Mat{x.back()}, w.final_norm, c.rms_norm_eps);
  Mat logits = Linear(last, w.lm_head, c.vocab_size, h);
  return std::vector<float>(logits[0].begin(), logits[0].end());
}

}  // namespace kvstore::engine::testing

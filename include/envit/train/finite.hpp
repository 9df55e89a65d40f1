// envit/train/finite.hpp — locating non-finite values (NaN, +-Inf) so an error can say where one came
// from: which tensor and element of a parameter/gradient/moment arena, which exit's loss term.
// Used by the training step (losses, gradients) and checkpoint restoring (parameters, moments).
#pragma once
#include <cmath>
#include <cstddef>
#include <sstream>
#include <string>

#include "envit/core/error.hpp"
#include "envit/core/finite.hpp"
#include "envit/model/params.hpp"
#include "envit/train/objective.hpp"

namespace envit {

// For an arena laid out like P's parameters (values, gradients or an optimiser moment): "" when every
// element is finite, else "<what> 'name' [shape] element k = nan" for the first tensor holding one,
// followed by how many other tensors do.
template <class T>
std::string non_finite_in(const ViTParams<T>& P, const T* arena, const std::string& what) {
  std::ostringstream os;
  int bad = 0;
  for (const ParamEntry& e : P.table()) {
    const std::ptrdiff_t k = first_non_finite(arena + e.offset, e.numel);
    if (k < 0) continue;
    if (bad++ == 0) {
      os << what << " '" << e.name << "' [";
      for (std::size_t d = 0; d < e.shape.size(); ++d) os << (d ? ", " : "") << e.shape[d];
      os << "] element " << k << " = " << arena[e.offset + std::size_t(k)];
    }
  }
  if (bad > 1) os << " (and " << bad - 1 << " more tensors)";
  return os.str();
}

// "" when every per-exit term is finite, else each exit with a non-finite term, e.g.
// "exit 2 (after block 4): ce = nan".
inline std::string non_finite_terms(const StepStats& s, const VitConfig& cfg) {
  std::ostringstream os;
  const char* names[3] = {"ce", "kl", "feat"};
  const std::vector<double>* terms[3] = {&s.ce, &s.kl, &s.feat};
  for (int j = 0; j < cfg.num_exits(); ++j) {
    bool first = true;
    for (int t = 0; t < 3; ++t) {
      if (terms[t]->size() <= std::size_t(j) || std::isfinite((*terms[t])[std::size_t(j)])) continue;
      os << (first ? (os.tellp() > 0 ? "; " : "") : ", ");
      if (first) os << "exit " << j + 1 << " (after block " << cfg.exits[std::size_t(j)] << "): ";
      os << names[t] << " = ";
      detail::cat_part(os, (*terms[t])[std::size_t(j)]);  // "nan" whatever the sign bit
      first = false;
    }
  }
  return os.str();
}

}  // namespace envit

// envit/ops/channel_kl.hpp — channel-softmax KL between token features (LGViT's heterogeneous
// distillation): per token row r over its D channels,
//   loss = scale * sum_r KL(softmax(t_r) || softmax(s_r))
// PyTorch: scale * F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), reduction='sum',
// log_target=True); LGViT's reduction='batchmean' on (B, n, D) features is scale = 1/B.
// The teacher t is a detached target (no gradient). Built on kl_div.hpp at temperature 1 (one home
// for the fused softmax-KL); this header adds the teacher's log-softmax and the feature layout.
// Letters: R rows (B * n tokens), D channels.
#pragma once
#include <cstddef>

#include "envit/ops/kl_div.hpp"
#include "envit/ops/softmax.hpp"

namespace envit {

struct ChannelKlShape { std::ptrdiff_t rows, dim; };
template <class T> struct ChannelKlCache { T* q; T* tlogp; };  // (R, D) each: softmax(s), log_softmax(t)

template <class T>
T channel_kl_forward(ChannelKlCache<T> c,  // written here, read by backward
                     const T* s,           // (R, D)  student features
                     const T* t,           // (R, D)  teacher features
                     ChannelKlShape sh, T scale) {
  log_softmax_forward<T>(c.tlogp, t, sh.rows, sh.dim, T(1));
  return kl_div_forward<T>(c.q, s, c.tlogp, sh.rows, sh.dim, T(1), scale);
}

// d loss / d s = scale * (softmax(s) - softmax(t))   accumulated into ds.
template <class T>
void channel_kl_backward(T* ds,                // (R, D)  accumulated (+=)
                         ChannelKlCache<T> c,  // from the forward
                         ChannelKlShape sh, T scale) {
  kl_div_backward<T>(ds, c.q, c.tlogp, sh.rows, sh.dim, T(1), scale);
}

}  // namespace envit

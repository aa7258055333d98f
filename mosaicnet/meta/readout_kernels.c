/*
 * Compiled inner loop of the readout-only MAML path (mosaicnet/meta/readout_steps.py).
 *
 * Compiled twice through mosaicnet/native_build.py: with -DREAL=float and
 * -DREAL=double. The inner loop adapts each task's readout by K SGD steps on
 * the cross-entropy of its support set, the logits read at the units' peak
 * times (found beforehand, without gradient):
 *
 *   r[k,c,s]  = X[s, tau[k,c,s], :]                 trace row at unit c's peak
 *   L[k,c,s]  = r[k,c,s] . w_k[c]                   (w stored unit-major: w[c, :])
 *   P[k,:,s]  = softmax over the units c (only the task's units where `inside`)
 *   D[k,c,s]  = (P[k,c,s] - Y[c,s]) / S
 *   g[k,c]    = sum_s D[k,c,s] r[k,c,s]
 *   w_{k+1}[c] = w_k[c] - eta[k] g[k,c]
 *
 * readout_steps_forward runs the K steps; readout_steps_backward is their
 * reverse-mode derivative (first order: the meta-gradient differentiates the
 * closed-form inner gradient once) with respect to w_0, the trace X and the
 * rates eta. The trace rows are read in place: nothing of size K x units x S x
 * rows is gathered or written, which the autograd graph of the same steps
 * does several times over. Tasks are independent and spread over OpenMP
 * threads; each thread writes only its own task's parts of the outputs.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef REAL
#error "compile with -DREAL=float or -DREAL=double"
#endif

static REAL dot(const REAL *a, const REAL *b, long n)
{
    REAL sum = 0;
    for (long i = 0; i < n; ++i)
        sum += a[i] * b[i];
    return sum;
}

static void axpy(REAL alpha, const REAL *x, REAL *y, long n)
{
    for (long i = 0; i < n; ++i)
        y[i] += alpha * x[i];
}

/*
 * Shapes (all contiguous):
 *   trace    (B, S, T, n)        X
 *   times    (B, K, U, S) int64  tau
 *   target   (B, U, S)           Y, one-hot
 *   inside   (B, U) uint8, or NULL (all units)
 *   eta      (B, K)
 *   weights  (B, K + 1, U, n)    in: weights[:, 0] = w_0; out: every w_k
 *   prob     (B, K, U, S)        out: P
 *   grad     (B, K, U, n)        out: g
 */
void readout_steps_forward(long n_tasks, long n_steps, long n_units, long n_samples,
                           long n_times, long n, const REAL *trace, const int64_t *times,
                           const REAL *target, const uint8_t *inside, const REAL *eta,
                           REAL *weights, REAL *prob, REAL *grad, int n_threads)
{
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (long b = 0; b < n_tasks; ++b) {
        const REAL *x = trace + b * n_samples * n_times * n;
        const uint8_t *in = inside ? inside + b * n_units : NULL;
        const REAL *y = target + b * n_units * n_samples;
        for (long k = 0; k < n_steps; ++k) {
            const int64_t *tau = times + (b * n_steps + k) * n_units * n_samples;
            const REAL *w = weights + (b * (n_steps + 1) + k) * n_units * n;
            REAL *w_next = (REAL *)w + n_units * n;
            REAL *p = prob + (b * n_steps + k) * n_units * n_samples;
            REAL *g = grad + (b * n_steps + k) * n_units * n;
            for (long s = 0; s < n_samples; ++s) {
                REAL largest = -INFINITY;
                for (long c = 0; c < n_units; ++c) {
                    if (in && !in[c])
                        continue;
                    const REAL *row = x + (s * n_times + tau[c * n_samples + s]) * n;
                    const REAL logit = dot(row, w + c * n, n);
                    p[c * n_samples + s] = logit;
                    if (logit > largest)
                        largest = logit;
                }
                REAL total = 0;
                for (long c = 0; c < n_units; ++c) {
                    REAL value = 0;
                    if (!in || in[c])
                        value = (REAL)exp((double)(p[c * n_samples + s] - largest));
                    p[c * n_samples + s] = value;
                    total += value;
                }
                for (long c = 0; c < n_units; ++c)
                    p[c * n_samples + s] /= total;
            }
            for (long c = 0; c < n_units; ++c) {
                REAL *gc = g + c * n;
                memset(gc, 0, (size_t)n * sizeof(REAL));
                for (long s = 0; s < n_samples; ++s) {
                    const REAL delta = (p[c * n_samples + s] - y[c * n_samples + s]) / n_samples;
                    const REAL *row = x + (s * n_times + tau[c * n_samples + s]) * n;
                    axpy(delta, row, gc, n);
                }
                const REAL *wc = w + c * n;
                REAL *wn = w_next + c * n;
                for (long i = 0; i < n; ++i)
                    wn[i] = wc[i] - eta[b * n_steps + k] * gc[i];
            }
        }
    }
}

/*
 * grad_w    (B, U, n)        in: dloss/dw_K; out: dloss/dw_0
 * grad_trace (B, S, T, n)    out, accumulated into (the caller zeroes it)
 * grad_eta  (B, K)           out
 * work      (B, 2, U, S) + (B, U, n) scratch
 */
void readout_steps_backward(long n_tasks, long n_steps, long n_units, long n_samples,
                            long n_times, long n, const REAL *trace, const int64_t *times,
                            const REAL *target, const REAL *eta, const REAL *weights,
                            const REAL *prob, const REAL *grad, REAL *grad_w,
                            REAL *grad_trace, REAL *grad_eta, REAL *work, int n_threads)
{
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (long b = 0; b < n_tasks; ++b) {
        const REAL *x = trace + b * n_samples * n_times * n;
        REAL *gx = grad_trace + b * n_samples * n_times * n;
        const REAL *y = target + b * n_units * n_samples;
        REAL *wbar = grad_w + b * n_units * n;
        REAL *lbar = work + b * (2 * n_units * n_samples + n_units * n);
        REAL *pbar = lbar + n_units * n_samples;
        REAL *wacc = pbar + n_units * n_samples;
        for (long k = n_steps - 1; k >= 0; --k) {
            const int64_t *tau = times + (b * n_steps + k) * n_units * n_samples;
            const REAL *w = weights + (b * (n_steps + 1) + k) * n_units * n;
            const REAL *p = prob + (b * n_steps + k) * n_units * n_samples;
            const REAL *g = grad + (b * n_steps + k) * n_units * n;
            const REAL step = eta[b * n_steps + k];
            /* w_{k+1} = w_k - eta g: d/deta = -sum wbar . g; gbar = -eta wbar. */
            REAL eta_bar = 0;
            for (long c = 0; c < n_units; ++c)
                eta_bar -= dot(wbar + c * n, g + c * n, n);
            grad_eta[b * n_steps + k] = eta_bar;
            /* g = sum_s D r: Dbar = r . gbar, so Pbar = Dbar / S. */
            for (long c = 0; c < n_units; ++c)
                for (long s = 0; s < n_samples; ++s) {
                    const REAL *row = x + (s * n_times + tau[c * n_samples + s]) * n;
                    pbar[c * n_samples + s] = -step * dot(row, wbar + c * n, n) / n_samples;
                }
            /* Softmax over the units: Lbar = P (Pbar - sum_c P Pbar); zero outside. */
            for (long s = 0; s < n_samples; ++s) {
                REAL mean = 0;
                for (long c = 0; c < n_units; ++c)
                    mean += p[c * n_samples + s] * pbar[c * n_samples + s];
                for (long c = 0; c < n_units; ++c)
                    lbar[c * n_samples + s] =
                        p[c * n_samples + s] * (pbar[c * n_samples + s] - mean);
            }
            /* Rows: rbar = D gbar + Lbar w_k, added into the trace rows they came from;
               w_k: wbar (through the step) + sum_s Lbar r. */
            memset(wacc, 0, (size_t)(n_units * n) * sizeof(REAL));
            for (long c = 0; c < n_units; ++c) {
                const REAL *wbar_c = wbar + c * n;
                for (long s = 0; s < n_samples; ++s) {
                    const long at = (s * n_times + tau[c * n_samples + s]) * n;
                    const REAL delta = (p[c * n_samples + s] - y[c * n_samples + s]) / n_samples;
                    const REAL l = lbar[c * n_samples + s];
                    axpy(-step * delta, wbar_c, gx + at, n);
                    axpy(l, w + c * n, gx + at, n);
                    axpy(l, x + at, wacc + c * n, n);
                }
            }
            for (long i = 0; i < n_units * n; ++i)
                wbar[i] += wacc[i];
        }
    }
}

/*
 * Compiled kernels of the fused recurrent layer (mosaicnet/network/fused_recurrence.py).
 *
 * One file, compiled twice by mosaicnet/network/native_kernels.py: with
 * -DREAL=float and -DREAL=double. Every arithmetic operation is done in REAL,
 * in the order the torch path does it, and the file is compiled with
 * -ffp-contract=off (no fused multiply-adds), so that each step rounds as the
 * torch operations do; only the threshold distance is formed from the model's
 * affine threshold row (see fused_recurrence.py, "Compiled kernels").
 *
 * Samples are independent, so the forward runs each sample's whole time loop
 * on one thread (its state stays in the core's cache), samples spread over
 * OpenMP threads. The backward is called once per time step, around torch's
 * dense product with the recurrent weights.
 */
#include <stdint.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef REAL
#error "compile with -DREAL=float or -DREAL=double"
#endif

#define MAX_STATES 8

/* Mirrored field for field by native_kernels.ModelParameters (ctypes). */
typedef struct {
    int n_states;
    int input_index;
    int recurrent_index;
    int inclusive;        /* threshold >=: equality spikes */
    int surrogate;        /* 0 fast sigmoid, 1 sigmoid, 2 triangular */
    double slope;
    double weight_unit;
    double update[MAX_STATES][MAX_STATES];
    double update_offset[MAX_STATES];
    double threshold[MAX_STATES];
    double threshold_offset;
    double reset[MAX_STATES][MAX_STATES];
    double reset_offset[MAX_STATES];
    double spike_matrix[2][MAX_STATES][MAX_STATES];
    double spike_offset[2][MAX_STATES];
    double initial[MAX_STATES];
} model_t;

static inline REAL absolute(REAL x) { return x < 0 ? -x : x; }

/* Elements per block of the backward's element-wise passes: small enough for the
 * block's temporaries to stay in the core's cache, each pass a simple loop the
 * compiler vectorises. */
#define BLOCK 512

/* out[i] = sum_j coefficient[j] * in_j[i] (zero coefficients skipped, terms added in
 * order, as CompiledNeuron.integrate), plus offset when non-zero. */
static void affine_row(int n_states, const REAL *coefficient, REAL offset,
                       const REAL *const *in, long n, REAL *restrict out)
{
    int first = 1;
    for (int j = 0; j < n_states; ++j) {
        const REAL c = coefficient[j];
        const REAL *restrict x = in[j];
        if (c == 0)
            continue;
        if (first) {
            for (long i = 0; i < n; ++i)
                out[i] = c * x[i];
            first = 0;
        } else {
            for (long i = 0; i < n; ++i)
                out[i] = out[i] + c * x[i];
        }
    }
    if (first)
        for (long i = 0; i < n; ++i)
            out[i] = 0;
    if (offset != 0)
        for (long i = 0; i < n; ++i)
            out[i] = out[i] + offset;
}

/* The surrogate derivative at distances d, as mosaicnet/network/surrogate.py computes it. */
static void surrogate_derivative(int kind, REAL slope, const REAL *restrict d, long n,
                                 REAL *restrict out)
{
    const REAL one = 1;
    if (kind == 0) {
        for (long i = 0; i < n; ++i) {
            const REAL t = slope * absolute(d[i]) + one;
            out[i] = one / (t * t);
        }
    } else if (kind == 1) {
        for (long i = 0; i < n; ++i) {
            const REAL s = one / (one + (REAL)__builtin_exp((double)(-(slope * d[i]))));
            out[i] = slope * s * (one - s);
        }
    } else {
        for (long i = 0; i < n; ++i) {
            const REAL t = one - slope * absolute(d[i]);
            out[i] = t > 0 ? t : 0;
        }
    }
}

/* The model's parameters in REAL, transposed where a backward pass needs them. */
typedef struct {
    int n_states;
    REAL update[MAX_STATES][MAX_STATES], update_t[MAX_STATES][MAX_STATES];
    REAL reset[MAX_STATES][MAX_STATES], reset_t[MAX_STATES][MAX_STATES];
    REAL update_offset[MAX_STATES], reset_offset[MAX_STATES], threshold[MAX_STATES];
    REAL spike_matrix[2][MAX_STATES][MAX_STATES], spike_offset[2][MAX_STATES];
    REAL initial[MAX_STATES];
    REAL threshold_offset, slope, weight_unit;
} real_model_t;

static real_model_t to_real(const model_t *m)
{
    real_model_t value = {.n_states = m->n_states};
    real_model_t *r = &value;
    for (int k = 0; k < m->n_states; ++k) {
        for (int j = 0; j < m->n_states; ++j) {
            r->update[k][j] = (REAL)m->update[k][j];
            r->update_t[j][k] = (REAL)m->update[k][j];
            r->reset[k][j] = (REAL)m->reset[k][j];
            r->reset_t[j][k] = (REAL)m->reset[k][j];
            for (int z = 0; z < 2; ++z)
                r->spike_matrix[z][k][j] = (REAL)m->spike_matrix[z][k][j];
        }
        r->update_offset[k] = (REAL)m->update_offset[k];
        r->reset_offset[k] = (REAL)m->reset_offset[k];
        r->threshold[k] = (REAL)m->threshold[k];
        r->initial[k] = (REAL)m->initial[k];
        for (int z = 0; z < 2; ++z)
            r->spike_offset[z][k] = (REAL)m->spike_offset[z][k];
    }
    r->threshold_offset = (REAL)m->threshold_offset;
    r->slope = (REAL)m->slope;
    r->weight_unit = (REAL)m->weight_unit;
    return value;
}

/* Elements of the block of the backward's element-wise passes that starts at start. */
static inline long block_length(long start, long size)
{
    return start + BLOCK < size ? BLOCK : size - start;
}

/*
 * The whole time loop, every sample.
 *   drive      (B, T, N)  input drive x @ W_in
 *   w_rec      (N, N)     masked recurrent weights
 *   spikes     (T, B, N)  0/1 spikes, REAL       [out]
 *   spiked     (T, B, N)  0/1 spikes, bytes      [out]
 *   surrogate  (T, B, N)  surrogate derivative at the threshold distance [out]
 *   pre_reset  (S, T, B, N) state before the reset, or NULL unless keeps_state [out]
 */
void fused_forward(const model_t *m, long B, long T, long N, const REAL *drive,
                   const REAL *w_rec, REAL *spikes, uint8_t *spiked, REAL *surrogate,
                   REAL *pre_reset, int n_threads)
{
    const real_model_t r = to_real(m);
    const int S = r.n_states;
    const int inclusive = m->inclusive;
    const int same_target = m->input_index == m->recurrent_index;

#pragma omp parallel num_threads(n_threads)
    {
        REAL *memory = malloc(sizeof(REAL) * (2 * S + 2) * N);
        long *events = malloc(sizeof(long) * N);
        const REAL *current[MAX_STATES];
        REAL *state = memory, *next = memory + S * N;
        REAL *distance = memory + 2 * S * N, *delivered = distance + N;
#pragma omp for schedule(static)
        for (long b = 0; b < B; ++b) {
            for (int k = 0; k < S; ++k)
                for (long i = 0; i < N; ++i)
                    state[k * N + i] = r.initial[k];
            for (long t = 0; t < T; ++t) {
                const long row = (t * B + b) * N;
                /* integrate */
                for (int k = 0; k < S; ++k)
                    current[k] = state + k * N;
                for (int k = 0; k < S; ++k)
                    affine_row(S, r.update[k], r.update_offset[k], current, N, next + k * N);
                REAL *swap = state;
                state = next;
                next = swap;
                /* threshold */
                for (int k = 0; k < S; ++k)
                    current[k] = state + k * N;
                affine_row(S, r.threshold, 0, current, N, distance);
                REAL *restrict spikes_t = spikes + row;
                uint8_t *restrict spiked_t = spiked + row;
                /* separate loops: each vectorises (one with both stores did not) */
                for (long i = 0; i < N; ++i)
                    distance[i] = distance[i] - r.threshold_offset;
                if (inclusive)
                    for (long i = 0; i < N; ++i)
                        spikes_t[i] = distance[i] >= 0 ? (REAL)1 : (REAL)0;
                else
                    for (long i = 0; i < N; ++i)
                        spikes_t[i] = distance[i] > 0 ? (REAL)1 : (REAL)0;
                for (long i = 0; i < N; ++i)
                    spiked_t[i] = spikes_t[i] != 0;
                surrogate_derivative(m->surrogate, r.slope, distance, N, surrogate + row);
                long n_events = 0;
                for (long i = 0; i < N; ++i)
                    if (spiked_t[i])
                        events[n_events++] = i;
                /* synapses: drive, then each spike's row of W_rec (as Brian2 delivers) */
                const REAL *drive_t = drive + (b * T + t) * N;
                for (int target = 0; target < 2 - same_target; ++target) {
                    const int recurrent = same_target || target == 1;
                    const int input = same_target || target == 0;
                    if (!input && n_events == 0 && r.weight_unit == 1)
                        continue; /* adds zeros */
                    for (long i = 0; i < N; ++i)
                        delivered[i] = input ? drive_t[i] : 0;
                    if (recurrent)
                        for (long e = 0; e < n_events; ++e) {
                            const REAL *restrict w = w_rec + events[e] * N;
                            for (long i = 0; i < N; ++i)
                                delivered[i] = delivered[i] + w[i];
                        }
                    if (r.weight_unit != 1)
                        for (long i = 0; i < N; ++i)
                            delivered[i] = delivered[i] * r.weight_unit;
                    REAL *restrict x = state + (input ? m->input_index : m->recurrent_index) * N;
                    for (long i = 0; i < N; ++i)
                        x[i] = x[i] + delivered[i];
                }
                if (pre_reset)
                    for (int k = 0; k < S; ++k)
                        for (long i = 0; i < N; ++i)
                            pre_reset[k * T * B * N + row + i] = state[k * N + i];
                /* reset, spiking neurons only */
                for (long e = 0; e < n_events; ++e) {
                    const long i = events[e];
                    REAL old[MAX_STATES];
                    for (int k = 0; k < S; ++k)
                        old[k] = state[k * N + i];
                    for (int k = 0; k < S; ++k) {
                        int first = 1;
                        REAL value = 0;
                        for (int j = 0; j < S; ++j) {
                            if (r.reset[k][j] == 0)
                                continue;
                            const REAL term = r.reset[k][j] * old[j];
                            value = first ? term : value + term;
                            first = 0;
                        }
                        if (r.reset_offset[k] != 0)
                            value = value + r.reset_offset[k];
                        state[k * N + i] = value;
                    }
                }
            }
        }
        free(memory);
        free(events);
    }
}

/*
 * Backward through step t's reset and into its synapses, for the block of n elements at
 * start (of size = B x N):
 *   after       (S, B, N)  gradient of the loss w.r.t. the state after step t's reset
 *   z           (B, N)     step t's spikes
 *   before      (S, B, N)  gradient w.r.t. the state before the reset [out]
 *   grad_drive  (B, N)     gradient of step t's input drive [out]
 *   to_recurrent (B, N)    gradient of step t's recurrent input z @ W_rec [out];
 *                          may be grad_drive when both go to the same variable
 */
static void reset_block(const model_t *m, const real_model_t *r, long size, long start,
                        long n, const REAL *after, const uint8_t *z, REAL *before,
                        REAL *grad_drive, REAL *to_recurrent)
{
    const int S = r->n_states;
    const REAL *current[MAX_STATES];
    REAL reset[BLOCK];
    for (int j = 0; j < S; ++j)
        current[j] = after + j * size + start;
    const uint8_t *restrict spike = z + start;
    for (int k = 0; k < S; ++k) {
        REAL *restrict out = before + k * size + start;
        const REAL *restrict kept = current[k];
        /* row k of reset^T times after where the neuron spiked */
        affine_row(S, r->reset_t[k], 0, current, n, reset);
        for (long i = 0; i < n; ++i)
            out[i] = spike[i] ? reset[i] : kept[i];
    }
    const REAL unit = r->weight_unit;
    for (int target = 0; target < 2; ++target) {
        /* one write when both gradients are the same array (same target variable) */
        if (target == 1 && to_recurrent == grad_drive)
            break;
        const int k = target == 0 ? m->input_index : m->recurrent_index;
        const REAL *restrict from = before + k * size + start;
        REAL *restrict to = (target == 0 ? grad_drive : to_recurrent) + start;
        if (unit != 1)
            for (long i = 0; i < n; ++i)
                to[i] = from[i] * unit;
        else
            for (long i = 0; i < n; ++i)
                to[i] = from[i];
    }
}

/*
 * Backward through the rest of step t, for one block, given product = to_recurrent @
 * W_rec^T: the gradient of the spikes (grad_spikes[t] + product), the reset's
 * derivative in the spike, the surrogate, the threshold and the transposed update.
 * Overwrites after (S, B, N) with the gradient w.r.t. the state after step t-1's reset.
 *   grad_spikes (B, N)  step t's gradient of the spikes, rows spikes_stride apart
 *   pre_reset  (S, ...) step t's pre-reset state, variable k at pre_reset + k * pre_stride,
 *              or NULL unless keeps_state
 *   before     (S, B, N) step t's gradient before the reset (reset_block)
 */
static void update_block(const real_model_t *r, long N, long size, long start, long n,
                         REAL *after, const uint8_t *z, const REAL *pre_reset, long pre_stride,
                         const REAL *grad_spikes, long spikes_stride, const REAL *product,
                         const REAL *surrogate, const REAL *before)
{
    const int S = r->n_states;
    const REAL *pre[MAX_STATES], *integrated_in[MAX_STATES];
    REAL g[BLOCK], derivative[2][BLOCK], integrated[MAX_STATES][BLOCK];
    const uint8_t *restrict spike = z + start;
    /* the block may straddle samples: row by row */
    for (long i = 0; i < n;) {
        const long element = start + i, column = element % N;
        const long length = N - column < n - i ? N - column : n - i;
        const REAL *restrict row = grad_spikes + (element / N) * spikes_stride + column;
        const REAL *restrict product_row = product + element;
        for (long q = 0; q < length; ++q)
            g[i + q] = row[q] + product_row[q];
        i += length;
    }
    if (pre_reset)
        for (int j = 0; j < S; ++j)
            pre[j] = pre_reset + j * pre_stride + start;
    /* d(reset result)/dz times the gradient after the reset */
    for (int k = 0; k < S; ++k) {
        int any = 0;
        for (int s = 0; s < 2; ++s) {
            int constant = 1;
            if (pre_reset)
                for (int j = 0; j < S; ++j)
                    constant = constant && r->spike_matrix[s][k][j] == 0;
            if (constant) {
                for (long i = 0; i < n; ++i)
                    derivative[s][i] = r->spike_offset[s][k];
                any = any || r->spike_offset[s][k] != 0;
            } else {
                affine_row(S, r->spike_matrix[s][k], 0, pre, n, derivative[s]);
                if (r->spike_offset[s][k] != 0)
                    for (long i = 0; i < n; ++i)
                        derivative[s][i] = r->spike_offset[s][k] + derivative[s][i];
                any = 1;
            }
        }
        if (!any)
            continue;
        const REAL *restrict gradient_after = after + k * size + start;
        for (long i = 0; i < n; ++i) {
            const REAL d = spike[i] ? derivative[1][i] : derivative[0][i];
            g[i] = g[i] + d * gradient_after[i];
        }
    }
    const REAL *restrict sur = surrogate + start;
    for (long i = 0; i < n; ++i)
        g[i] = g[i] * sur[i];
    for (int k = 0; k < S; ++k) {
        const REAL *restrict kept = before + k * size + start;
        const REAL c = r->threshold[k];
        if (c != 0)
            for (long i = 0; i < n; ++i)
                integrated[k][i] = kept[i] + c * g[i];
        else
            for (long i = 0; i < n; ++i)
                integrated[k][i] = kept[i];
        integrated_in[k] = integrated[k];
    }
    /* through the update: row k of update^T */
    for (int k = 0; k < S; ++k)
        affine_row(S, r->update_t[k], 0, integrated_in, n, after + k * size + start);
}

/*
 * One call of the backward loop: the rest of step t (update_block; skipped where
 * z_update is NULL), then step t-1's reset and synapses (reset_block, on the after it
 * just wrote; skipped where z_reset is NULL), block by block, so that each block's
 * data are read once while in cache. Between two calls torch computes the next
 * product = to_recurrent @ W_rec^T. Arguments as in the two block functions.
 */
void fused_backward_step(const model_t *m, long B, long N, REAL *after, REAL *before,
                         const uint8_t *z_update, const REAL *pre_reset, long pre_stride,
                         const REAL *grad_spikes, long spikes_stride, const REAL *product,
                         const REAL *surrogate, const uint8_t *z_reset, REAL *grad_drive,
                         REAL *to_recurrent, int n_threads)
{
    const real_model_t r = to_real(m);
    const long size = B * N;
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (long start = 0; start < size; start += BLOCK) {
        const long n = block_length(start, size);
        if (z_update)
            update_block(&r, N, size, start, n, after, z_update, pre_reset, pre_stride,
                         grad_spikes, spikes_stride, product, surrogate, before);
        if (z_reset)
            reset_block(m, &r, size, start, n, after, z_reset, before, grad_drive,
                        to_recurrent);
    }
}

/* Calls visit(j) for each non-zero byte j of spikes[0..n), eight bytes at a time:
 * spikes are rare, most words are zero. */
#define FOR_EACH_SPIKE(spikes, n, j, body)                                                   \
    for (long start_ = 0; start_ < (n); start_ += 8) {                                      \
        if (start_ + 8 <= (n)) {                                                             \
            uint64_t word_;                                                                  \
            __builtin_memcpy(&word_, (spikes) + start_, 8);                                  \
            if (word_ == 0)                                                                  \
                continue;                                                                    \
        }                                                                                    \
        const long end_ = start_ + 8 < (n) ? start_ + 8 : (n);                               \
        for (long j = start_; j < end_; ++j)                                                 \
            if ((spikes)[j]) {                                                               \
                body                                                                         \
            }                                                                                \
    }

/*
 * Input drive of R rows (samples x steps) of binary input spikes: drive[r] = sum of the
 * rows of W_in of the inputs that spiked, in order of j (as Brian2's synapses deliver
 * them; at the published size a few per cent of the inputs spike).
 *   x (R, n_in) 0/1 bytes, w_in (n_in, N), drive (R, N) [out]
 */
void input_drive(long R, long n_in, long N, const uint8_t *x, const REAL *w_in, REAL *drive,
                 int n_threads)
{
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (long row = 0; row < R; ++row) {
        const uint8_t *inputs = x + row * n_in;
        REAL *restrict out = drive + row * N;
        int first = 1;
        FOR_EACH_SPIKE(inputs, n_in, j, {
            const REAL *restrict w = w_in + j * N;
            if (first) {
                for (long i = 0; i < N; ++i)
                    out[i] = w[i];
                first = 0;
            } else {
                for (long i = 0; i < N; ++i)
                    out[i] = out[i] + w[i];
            }
        })
        if (first)
            for (long i = 0; i < N; ++i)
                out[i] = 0;
    }
}

/*
 * Z^T G for binary spikes Z (B, T, n) and a gradient G (B, T, N): row j of the result
 * sums the rows of G at which spike j is 1 (the weight gradient of the input synapses,
 * n = n_in, and of the recurrent ones, n = N). Rows of both are contiguous, at strides
 * (z_b, z_t) and (g_b, g_t) elements (batch- or time-major). Each thread sums its rows
 * into its own copy (workspace, n_threads x n x N), the copies are then added in
 * thread order: the result depends on the number of threads only.
 *   z 0/1 bytes, grad, out (n, N) [out]
 */
void spike_weight_gradient(long B, long T, long n, long N, const uint8_t *z, long z_b,
                           long z_t, const REAL *grad, long g_b, long g_t, REAL *out,
                           REAL *workspace, int n_threads)
{
    const long size = n * N;
#pragma omp parallel num_threads(n_threads)
    {
#ifdef _OPENMP
        const int thread = omp_get_thread_num(), team = omp_get_num_threads();
#else
        const int thread = 0, team = 1;
#endif
        REAL *restrict own = workspace + thread * size;
        for (long i = 0; i < size; ++i)
            own[i] = 0;
#pragma omp for schedule(static)
        for (long row = 0; row < B * T; ++row) {
            const long b = row / T, t = row % T;
            const uint8_t *spikes = z + b * z_b + t * z_t;
            const REAL *restrict g = grad + b * g_b + t * g_t;
            FOR_EACH_SPIKE(spikes, n, j, {
                REAL *restrict sum = own + j * N;
                for (long i = 0; i < N; ++i)
                    sum[i] = sum[i] + g[i];
            })
        }
#pragma omp for schedule(static)
        for (long i = 0; i < size; ++i) {
            REAL total = workspace[i];
            for (int t = 1; t < team; ++t)
                total = total + workspace[t * size + i];
            out[i] = total;
        }
    }
}

/*
 * The readout's leaky trace and its transpose: out[b, t] = kappa out[b, t -/+ 1] +
 * values[b, t] along t (zero start), the product and the sum rounded separately as in
 * the torch loop. values: (B, T, N) with strides (stride_b, stride_t, 1); out (B, T, N)
 * contiguous [out].
 */
void leaky_recursion(long B, long T, long N, const REAL *values, long stride_b,
                     long stride_t, double kappa_in, int reverse, REAL *out, int n_threads)
{
    const REAL kappa = (REAL)kappa_in;
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (long b = 0; b < B; ++b) {
        for (long s = 0; s < T; ++s) {
            const long t = reverse ? T - 1 - s : s;
            const REAL *restrict v = values + b * stride_b + t * stride_t;
            REAL *restrict o = out + (b * T + t) * N;
            if (s == 0) {
                for (long i = 0; i < N; ++i)
                    o[i] = v[i];
            } else {
                const REAL *restrict previous = out + (b * T + (reverse ? t + 1 : t - 1)) * N;
                for (long i = 0; i < N; ++i)
                    o[i] = kappa * previous[i] + v[i];
            }
        }
    }
}

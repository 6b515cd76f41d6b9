/* The selective scan (S6) of Eq. 2-3 and its backward, as fused loops per sequence.
 *
 * Part of handssca (handssca/ssm/fused_scan.py compiles and calls it). Same arithmetic as the
 * sequential reference (handssca.ssm.scan.selective_scan_reference), in the grouped layout of
 * handssca.ssm.chunked_scan.selective_scan_grouped:
 *
 *   u, delta   (G, batch, L, Dg)  any strides, the channel axis contiguous
 *   A          (G, Dg, N)         contiguous, A <= 0 (Mamba's A = -exp(A_log))
 *   B, C       (G, batch, L, N)   any strides, the state axis contiguous
 *   D, bias    (G, Dg)            contiguous, or NULL
 *   y          (G, batch, L, Dg)  contiguous, written
 *   h_last     (G, batch, Dg, N)  contiguous, written when not NULL
 *
 * per group g, sequence b, channel d, step t:
 *   Delta = softplus(delta + bias)                 (softplus when asked for)
 *   h_t   = exp(Delta A) * h_{t-1} + Delta B_t u_t (Eq. 2, with the B-bar of Eq. 3)
 *   y_t   = C_t . h_t + D u_t                      (Eq. 1-2)
 *
 * Why a compiled loop: in eager PyTorch each state update h_t costs about five passes over
 * memory (the chunked backend); here the state of a tile of TILE channels stays in the L1 cache
 * (N x TILE numbers), every input is read once and every output written once, and the inner loop
 * over the tile's channels is vectorised by the compiler. Work items are (g, b, channel tile);
 * the caller splits [0, items) between threads.
 *
 * Backward (handssca_scan_bwd_*): the forward, given h_ckpt, also stores the state before every
 * CHUNK-th step (not every step's state). The backward walks the chunks from the last, recomputes
 * a chunk's states and decays from its stored start state, and runs the adjoint recurrence
 * (lambda_t = dLoss/dh_t)
 *
 *   lambda_t = Abar_{t+1} lambda_{t+1} + C_t dy_t,
 *   dDelta_t = sum_n lambda_t (A Abar_t h_{t-1} + B_t u_t),    du_t = sum_n lambda_t Delta_t B_t + D dy_t,
 *   dA += lambda_t Abar_t h_{t-1} Delta_t,   dB_t = sum_d lambda_t Delta_t u_t,   dC_t = sum_d h_t dy_t,
 *
 * then the softplus' derivative (a sigmoid) and the bias. Its work items are (g, b): the tiles of
 * one sequence run in one item, so dB and dC (sums over channels) need no locks; dA, dD and the
 * bias' gradient come out per sequence, (G, batch, ...), and the caller sums over the batch.
 *
 * exp of the decay: exp(x) for x <= 0 as 2^k * p(f), x log2(e) = k + f, |f| <= 1/2, p a degree-5
 * polynomial fit to 2^f (relative error 8e-8, below float32's rounding), so that the loop needs
 * no vector math library. Arguments below -126 ln 2 (a decay under 1e-38 in one step) give
 * 2^-126 p(f) instead of a smaller number or 0: the old state is forgotten either way. The
 * double version calls exp(). The softplus uses log1p(exp(x)) below 20 and x above, as
 * torch.nn.functional.softplus does.
 *
 * Build: -O3 with -ffast-math at compile time only (never when linking: GCC then adds
 * crtfastmath.o, which would switch the whole process to flush-to-zero arithmetic).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TILE 64     /* channels per work item: N x TILE states stay in the L1 cache */
#define N_MAX 64    /* largest state size N the kernel takes (HandSSCA: 16) */
#define CHUNK 32    /* steps between the states the forward stores for the backward */

int handssca_scan_tile(void) { return TILE; }
int handssca_scan_n_max(void) { return N_MAX; }
int handssca_scan_chunk(void) { return CHUNK; }

static inline float exp_nonpos_f32(float x)
{
    float t = x * 1.44269504088896341f;
    t = t < -126.0f ? -126.0f : t;
    float k = __builtin_floorf(t + 0.5f);
    float f = t - k;
    float p = 1.3266970386327907e-3f;
    p = p * f + 9.675459745517779e-3f;
    p = p * f + 5.55074261600254e-2f;
    p = p * f + 2.4022121753561637e-1f;
    p = p * f + 6.931469491610633e-1f;
    p = p * f + 1.0000000710296983f;
    int32_t bits = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline double exp_nonpos_f64(double x) { return exp(x); }
static inline float softplus_f32(float x) { return x > 20.0f ? x : log1pf(expf(x)); }
static inline double softplus_f64(double x) { return x > 20.0 ? x : log1p(exp(x)); }
/* d softplus(x) / dx, 1 above the threshold as torch's softplus_backward */
static inline float sigmoid_f32(float x) { return x > 20.0f ? 1.0f : 1.0f / (1.0f + expf(-x)); }
static inline double sigmoid_f64(double x) { return x > 20.0 ? 1.0 : 1.0 / (1.0 + exp(-x)); }

#define DEFINE_SCAN(NAME, T, EXP, SOFTPLUS)                                                      \
void NAME(int64_t G, int64_t NB, int64_t L, int64_t Dg, int64_t N,                               \
          const T *u, const int64_t *su, const T *delta, const int64_t *sd, const T *A,          \
          const T *Bm, const int64_t *sB, const T *Cm, const int64_t *sC,                        \
          const T *Dv, const T *bias, int softplus, T *y, T *h_last, T *h_ckpt,                  \
          int64_t item_begin, int64_t item_end)                                                  \
{                                                                                                \
    const int64_t ntile = (Dg + TILE - 1) / TILE, nck = (L + CHUNK - 1) / CHUNK;                 \
    if (item_end > G * NB * ntile) item_end = G * NB * ntile;                                    \
    T h[N_MAX][TILE], At[N_MAX][TILE], dt[TILE], dtu[TILE], acc[TILE], bs[TILE], Ds[TILE];       \
    for (int64_t item = item_begin; item < item_end; ++item) {                                   \
        const int64_t tile = item % ntile, gb = item / ntile, b = gb % NB, g = gb / NB;          \
        const int64_t d0 = tile * TILE, nd = Dg - d0 < TILE ? Dg - d0 : TILE;                     \
        for (int64_t n = 0; n < N; ++n)                                                          \
            for (int64_t j = 0; j < nd; ++j) {                                                   \
                At[n][j] = A[(g * Dg + d0 + j) * N + n];                                         \
                h[n][j] = 0;                                                                     \
            }                                                                                    \
        for (int64_t j = 0; j < nd; ++j) {                                                       \
            bs[j] = bias ? bias[g * Dg + d0 + j] : 0;                                            \
            Ds[j] = Dv ? Dv[g * Dg + d0 + j] : 0;                                                \
        }                                                                                        \
        const T *up = u + g * su[0] + b * su[1] + d0;                                            \
        const T *dp = delta + g * sd[0] + b * sd[1] + d0;                                        \
        const T *Bp = Bm + g * sB[0] + b * sB[1];                                                \
        const T *Cp = Cm + g * sC[0] + b * sC[1];                                                \
        T *yp = y + (g * NB + b) * L * Dg + d0;                                                  \
        for (int64_t l = 0; l < L; ++l) {                                                        \
            if (h_ckpt && l % CHUNK == 0) {  /* (G, batch, chunks, N, Dg): state before step l */ \
                T *ck = h_ckpt + ((g * NB + b) * nck + l / CHUNK) * N * Dg + d0;                 \
                for (int64_t n = 0; n < N; ++n)                                                  \
                    for (int64_t j = 0; j < nd; ++j) ck[n * Dg + j] = h[n][j];                   \
            }                                                                                    \
            const T *ul = up + l * su[2], *dl = dp + l * sd[2];                                  \
            const T *Bl = Bp + l * sB[2], *Cl = Cp + l * sC[2];                                  \
            for (int64_t j = 0; j < nd; ++j) {                                                   \
                T x = dl[j] + bs[j];                                                             \
                if (softplus) x = SOFTPLUS(x);                                                   \
                dt[j] = x;                                                                       \
                dtu[j] = x * ul[j];                                                              \
                acc[j] = Ds[j] * ul[j];                                                          \
            }                                                                                    \
            for (int64_t n = 0; n < N; ++n) {                                                    \
                const T bn = Bl[n], cn = Cl[n];                                                  \
                T *hn = h[n];                                                                    \
                const T *an = At[n];                                                             \
                for (int64_t j = 0; j < nd; ++j) {                                               \
                    const T hv = EXP(dt[j] * an[j]) * hn[j] + dtu[j] * bn;                       \
                    hn[j] = hv;                                                                  \
                    acc[j] += cn * hv;                                                           \
                }                                                                                \
            }                                                                                    \
            T *yl = yp + l * Dg;                                                                 \
            for (int64_t j = 0; j < nd; ++j) yl[j] = acc[j];                                     \
        }                                                                                        \
        if (h_last)                                                                              \
            for (int64_t j = 0; j < nd; ++j)                                                     \
                for (int64_t n = 0; n < N; ++n)                                                  \
                    h_last[((g * NB + b) * Dg + d0 + j) * N + n] = h[n][j];                      \
    }                                                                                            \
}

#define DEFINE_SCAN_BWD(NAME, T, EXP, SOFTPLUS, SIGMOID)                                         \
int NAME(int64_t G, int64_t NB, int64_t L, int64_t Dg, int64_t N,                                \
         const T *u, const int64_t *su, const T *delta, const int64_t *sd, const T *A,           \
         const T *Bm, const int64_t *sB, const T *Cm, const int64_t *sC,                         \
         const T *Dv, const T *bias, int softplus, const T *h_ckpt, const T *gy,                 \
         const T *gh_last, T *du, T *ddelta, T *dA, T *dD, T *dbias, T *dB, T *dC,               \
         int64_t item_begin, int64_t item_end)                                                   \
{                                                                                                \
    const int64_t nck = (L + CHUNK - 1) / CHUNK;                                                 \
    if (item_end > G * NB) item_end = G * NB;                                                    \
    /* a chunk's states h_{t0-1..t1-1} and decays, (CHUNK + 1) x N x TILE and CHUNK x N x TILE */ \
    /* and lambda, A, dA of the tile, N x TILE each; on the heap, not a thread's stack */        \
    T *hs = malloc(sizeof(T) * (2 * CHUNK + 4) * N * TILE);                                      \
    if (!hs) return 1;                                                                           \
    T *as = hs + (CHUNK + 1) * N * TILE;                                                         \
    T (*lam)[TILE] = (T (*)[TILE])(as + CHUNK * N * TILE);                                       \
    T (*At)[TILE] = lam + N, (*gA)[TILE] = lam + 2 * N;                                          \
    T dt[CHUNK][TILE], sg[CHUNK][TILE], ddt[TILE], gu[TILE], gD[TILE], gb_[TILE], bs[TILE],       \
      Ds[TILE];                                                                                  \
    for (int64_t gb = item_begin; gb < item_end; ++gb) {                                         \
        const int64_t g = gb / NB, b = gb % NB;                                                  \
        const T *up = u + g * su[0] + b * su[1], *dp = delta + g * sd[0] + b * sd[1];            \
        const T *Bp = Bm + g * sB[0] + b * sB[1], *Cp = Cm + g * sC[0] + b * sC[1];              \
        const T *gyp = gy + gb * L * Dg;                                                         \
        T *dup = du + gb * L * Dg, *ddp = ddelta + gb * L * Dg;                                  \
        T *dBp = dB + gb * L * N, *dCp = dC + gb * L * N;                                        \
        for (int64_t d0 = 0; d0 < Dg; d0 += TILE) {                                              \
            const int64_t nd = Dg - d0 < TILE ? Dg - d0 : TILE;                                  \
            for (int64_t n = 0; n < N; ++n)                                                      \
                for (int64_t j = 0; j < nd; ++j) {                                               \
                    At[n][j] = A[(g * Dg + d0 + j) * N + n];                                     \
                    lam[n][j] = gh_last ? gh_last[(gb * Dg + d0 + j) * N + n] : 0;               \
                    gA[n][j] = 0;                                                                \
                }                                                                                \
            for (int64_t j = 0; j < nd; ++j) {                                                   \
                bs[j] = bias ? bias[g * Dg + d0 + j] : 0;                                        \
                Ds[j] = Dv ? Dv[g * Dg + d0 + j] : 0;                                            \
                gD[j] = 0;                                                                       \
                gb_[j] = 0;                                                                      \
            }                                                                                    \
            for (int64_t c = nck - 1; c >= 0; --c) {                                             \
                const int64_t t0 = c * CHUNK, len = L - t0 < CHUNK ? L - t0 : CHUNK;             \
                const T *ck = h_ckpt + (gb * nck + c) * N * Dg + d0;                             \
                for (int64_t n = 0; n < N; ++n)                                                  \
                    for (int64_t j = 0; j < nd; ++j) hs[n * TILE + j] = ck[n * Dg + j];          \
                for (int64_t k = 0; k < len; ++k) {  /* recompute the chunk's states */          \
                    const int64_t t = t0 + k;                                                    \
                    const T *ul = up + t * su[2] + d0, *dl = dp + t * sd[2] + d0;                \
                    const T *Bl = Bp + t * sB[2];                                                \
                    T dtu[TILE];                                                                 \
                    for (int64_t j = 0; j < nd; ++j) {                                           \
                        T x = dl[j] + bs[j];                                                     \
                        sg[k][j] = softplus ? SIGMOID(x) : 1;                                    \
                        if (softplus) x = SOFTPLUS(x);                                           \
                        dt[k][j] = x;                                                            \
                        dtu[j] = x * ul[j];                                                      \
                    }                                                                            \
                    for (int64_t n = 0; n < N; ++n) {                                            \
                        const T bn = Bl[n];                                                      \
                        const T *hp = hs + (k * N + n) * TILE;                                   \
                        T *hc = hs + ((k + 1) * N + n) * TILE, *ac = as + (k * N + n) * TILE;    \
                        for (int64_t j = 0; j < nd; ++j) {                                       \
                            const T a = EXP(dt[k][j] * At[n][j]);                                \
                            ac[j] = a;                                                           \
                            hc[j] = a * hp[j] + dtu[j] * bn;                                     \
                        }                                                                        \
                    }                                                                            \
                }                                                                                \
                for (int64_t k = len - 1; k >= 0; --k) {  /* the adjoint, backwards */           \
                    const int64_t t = t0 + k;                                                    \
                    const T *ul = up + t * su[2] + d0, *gyl = gyp + t * Dg + d0;                 \
                    const T *Bl = Bp + t * sB[2], *Cl = Cp + t * sC[2];                          \
                    for (int64_t j = 0; j < nd; ++j) {                                           \
                        ddt[j] = 0;                                                              \
                        gu[j] = Ds[j] * gyl[j];                                                  \
                        gD[j] += gyl[j] * ul[j];                                                 \
                    }                                                                            \
                    for (int64_t n = 0; n < N; ++n) {                                            \
                        const T bn = Bl[n], cn = Cl[n];                                          \
                        const T *hp = hs + (k * N + n) * TILE, *hc = hs + ((k + 1) * N + n) * TILE; \
                        const T *ac = as + (k * N + n) * TILE;                                   \
                        T sumC = 0, sumB = 0;                                                    \
                        for (int64_t j = 0; j < nd; ++j) {                                       \
                            const T l = lam[n][j] + cn * gyl[j];                                 \
                            const T w = l * hp[j] * ac[j];                                       \
                            sumC += hc[j] * gyl[j];                                              \
                            sumB += l * dt[k][j] * ul[j];                                        \
                            ddt[j] += w * At[n][j] + l * bn * ul[j];                             \
                            gA[n][j] += w * dt[k][j];                                            \
                            gu[j] += l * dt[k][j] * bn;                                          \
                            lam[n][j] = l * ac[j];                                               \
                        }                                                                        \
                        dCp[t * N + n] += sumC;                                                  \
                        dBp[t * N + n] += sumB;                                                  \
                    }                                                                            \
                    for (int64_t j = 0; j < nd; ++j) {                                           \
                        const T g_raw = ddt[j] * sg[k][j];                                       \
                        ddp[t * Dg + d0 + j] = g_raw;                                            \
                        gb_[j] += g_raw;                                                         \
                        dup[t * Dg + d0 + j] = gu[j];                                            \
                    }                                                                            \
                }                                                                                \
            }                                                                                    \
            for (int64_t j = 0; j < nd; ++j) {                                                   \
                for (int64_t n = 0; n < N; ++n) dA[(gb * Dg + d0 + j) * N + n] = gA[n][j];        \
                dD[gb * Dg + d0 + j] = gD[j];                                                    \
                dbias[gb * Dg + d0 + j] = gb_[j];                                                \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    free(hs);                                                                                    \
    return 0;                                                                                    \
}

DEFINE_SCAN(handssca_scan_f32, float, exp_nonpos_f32, softplus_f32)
DEFINE_SCAN(handssca_scan_f64, double, exp_nonpos_f64, softplus_f64)
DEFINE_SCAN_BWD(handssca_scan_bwd_f32, float, exp_nonpos_f32, softplus_f32, sigmoid_f32)
DEFINE_SCAN_BWD(handssca_scan_bwd_f64, double, exp_nonpos_f64, softplus_f64, sigmoid_f64)

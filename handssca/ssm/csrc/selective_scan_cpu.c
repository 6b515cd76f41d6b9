/* The selective scan (S6) of Eq. 2-3, inference only, as one fused loop per sequence.
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
#include <string.h>

#define TILE 64     /* channels per work item: N x TILE states stay in the L1 cache */
#define N_MAX 64    /* largest state size N the kernel takes (HandSSCA: 16) */

int handssca_scan_tile(void) { return TILE; }
int handssca_scan_n_max(void) { return N_MAX; }

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

#define DEFINE_SCAN(NAME, T, EXP, SOFTPLUS)                                                      \
void NAME(int64_t G, int64_t NB, int64_t L, int64_t Dg, int64_t N,                               \
          const T *u, const int64_t *su, const T *delta, const int64_t *sd, const T *A,          \
          const T *Bm, const int64_t *sB, const T *Cm, const int64_t *sC,                        \
          const T *Dv, const T *bias, int softplus, T *y, T *h_last,                             \
          int64_t item_begin, int64_t item_end)                                                  \
{                                                                                                \
    const int64_t ntile = (Dg + TILE - 1) / TILE;                                                \
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

DEFINE_SCAN(handssca_scan_f32, float, exp_nonpos_f32, softplus_f32)
DEFINE_SCAN(handssca_scan_f64, double, exp_nonpos_f64, softplus_f64)

#include "background.h"

#include "normalize.h"

#include <algorithm>
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#endif
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

// Bit-for-bit parity with numpy needs every float operation rounded on its own.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#if defined(__GNUC__)
#define MM_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define MM_ALWAYS_INLINE inline
#endif

namespace maximask {

namespace {

// numpy's pairwise summation (add.reduce over a contiguous array), in T arithmetic.
// f(i) gives element i of the sequence being summed.
template <class T, class F>
T pairwise_sum(const F& f, std::int64_t lo, std::int64_t n) {
    if (n < 8) {
        T res = 0;
        for (std::int64_t i = 0; i < n; ++i) res += f(lo + i);
        return res;
    }
    if (n <= 128) {
        T r[8];
        for (int j = 0; j < 8; ++j) r[j] = f(lo + j);
        std::int64_t i = 8;
        for (; i < n - (n % 8); i += 8) {
            for (int j = 0; j < 8; ++j) r[j] += f(lo + i + j);
        }
        T res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; ++i) res += f(lo + i);
        return res;
    }
    std::int64_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_sum<T>(f, lo, n2) + pairwise_sum<T>(f, lo + n2, n - n2);
}

#if defined(__GNUC__)
// The float32 pairwise sums of mean_std with vectors (GCC/Clang vector extensions): the
// 8 accumulators of pairwise_sum as two 4-lane vectors, the same operations in the same
// order.
typedef float v4f __attribute__((vector_size(16)));

inline v4f load4(const float* p) {
    v4f r;
    std::memcpy(&r, p, sizeof r);
    return r;
}

// Sq false: sum of v[i]; true: sum of (v[i] - m)^2.
template <bool Sq>
float pairwise_sum_f32(const float* v, std::int64_t n, float m) {
    if (n < 8) {
        float res = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            const float d = Sq ? v[i] - m : v[i];
            res += Sq ? d * d : d;
        }
        return res;
    }
    if (n <= 128) {
        const v4f mv = {m, m, m, m};
        v4f r0 = load4(v), r1 = load4(v + 4);
        if (Sq) {
            r0 -= mv;
            r1 -= mv;
            r0 *= r0;
            r1 *= r1;
        }
        std::int64_t i = 8;
        for (; i < n - (n % 8); i += 8) {
            v4f x0 = load4(v + i), x1 = load4(v + i + 4);
            if (Sq) {
                x0 -= mv;
                x1 -= mv;
                x0 *= x0;
                x1 *= x1;
            }
            r0 += x0;
            r1 += x1;
        }
        float res = ((r0[0] + r0[1]) + (r0[2] + r0[3])) + ((r1[0] + r1[1]) + (r1[2] + r1[3]));
        for (; i < n; ++i) {
            const float d = Sq ? v[i] - m : v[i];
            res += Sq ? d * d : d;
        }
        return res;
    }
    std::int64_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_sum_f32<Sq>(v, n2, m) + pairwise_sum_f32<Sq>(v + n2, n - n2, m);
}

inline void mean_std(const float* v, std::int64_t n, float* mean, float* std) {
    const float m = pairwise_sum_f32<false>(v, n, 0.0f) / static_cast<float>(n);
    const float ss = pairwise_sum_f32<true>(v, n, m);
    *mean = m;
    *std = std::sqrt(ss / static_cast<float>(n));
}
#endif

// np.mean and np.std (ddof 0) of a contiguous array, in T arithmetic.
template <class T>
void mean_std(const T* v, std::int64_t n, T* mean, T* std) {
    const T m = pairwise_sum<T>([v](std::int64_t i) { return v[i]; }, 0, n) / static_cast<T>(n);
    const T ss = pairwise_sum<T>(
        [v, m](std::int64_t i) {
            const T d = v[i] - m;
            return d * d;
        },
        0, n);
    *mean = m;
    *std = std::sqrt(ss / static_cast<T>(n));
}

// Median of the sorted range s[lo, hi) as np.median computes it.
template <class T>
T sorted_median(const T* s, std::int64_t lo, std::int64_t hi) {
    const std::int64_t n = hi - lo;
    if (n % 2) return s[lo + n / 2];
    T a = s[lo + n / 2 - 1];
    a += s[lo + n / 2];
    return a / static_cast<T>(2);
}

// LSD radix sort of float32 values (3 passes of 11 bits on order-preserving keys).
void radix_sort(const float* in, std::int64_t n, std::vector<std::uint32_t>& a,
                std::vector<std::uint32_t>& b, float* out) {
    a.resize(n);
    b.resize(n);
    std::vector<std::uint32_t> hist(3 * 2048, 0);
    for (std::int64_t i = 0; i < n; ++i) {
        std::uint32_t u;
        std::memcpy(&u, in + i, 4);
        u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
        a[i] = u;
        ++hist[u & 2047];
        ++hist[2048 + ((u >> 11) & 2047)];
        ++hist[4096 + (u >> 22)];
    }
    for (int p = 0; p < 3; ++p) {
        std::uint32_t* hp = hist.data() + 2048 * p;
        std::uint32_t sum = 0;
        for (int j = 0; j < 2048; ++j) {
            const std::uint32_t c = hp[j];
            hp[j] = sum;
            sum += c;
        }
        const int shift = 11 * p;
        for (std::int64_t i = 0; i < n; ++i) {
            const std::uint32_t u = a[i];
            b[hp[(u >> shift) & 2047]++] = u;
        }
        a.swap(b);
    }
    for (std::int64_t i = 0; i < n; ++i) {
        std::uint32_t u = a[i];
        u = (u & 0x80000000u) ? (u & 0x7fffffffu) : ~u;
        std::memcpy(out + i, &u, 4);
    }
}

// Compaction step by step, from src[i] to src[m): the scalar form of the kernels below
// (branch-free: each value is written, and the write position moves only if it is kept).
inline std::int64_t compact_from(const float* src, std::int64_t i, std::int64_t m, float lo,
                                 float hi, float* dst, std::int64_t j, std::int64_t nb,
                                 std::int64_t* below) {
    for (; i < m; ++i) {
        const float x = src[i];
        const bool in = (x >= lo) & (x <= hi);
        nb += x < lo;
        dst[j] = x;
        j += in;
    }
    *below = nb;
    return j;
}

// Compaction: the values of src[0, m) within [lo, hi], in order, into dst (may be src:
// in place), and how many lie below lo. Returns how many were kept.
std::int64_t compact_scalar(const float* src, std::int64_t m, float lo, float hi, float* dst,
                            std::int64_t* below) {
    std::int64_t j = 0, nb = 0, i = 0;
    for (; i + 16 <= m; i += 16) {  // blocks with nothing dropped: a vector copy
        int out = 0;
        for (int q = 0; q < 16; ++q) out |= (src[i + q] < lo) | (src[i + q] > hi);
        if (!out) {
            float tmp[16];
            for (int q = 0; q < 16; ++q) tmp[q] = src[i + q];
            for (int q = 0; q < 16; ++q) dst[j + q] = tmp[q];
            j += 16;
            continue;
        }
        for (int q = 0; q < 16; ++q) {
            const float x = src[i + q];
            const bool in = (x >= lo) & (x <= hi);
            nb += x < lo;
            dst[j] = x;
            j += in;
        }
    }
    return compact_from(src, i, m, lo, hi, dst, j, nb, below);
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define MM_X86_DISPATCH 1
// Lane permutations that move the lanes of an 8-bit mask to the front, in order.
struct CompressTable {
    alignas(32) std::uint32_t perm[256][8];
    CompressTable() {
        for (int mk = 0; mk < 256; ++mk) {
            int c = 0;
            for (int l = 0; l < 8; ++l)
                if (mk & (1 << l)) perm[mk][c++] = static_cast<std::uint32_t>(l);
            for (; c < 8; ++c) perm[mk][c] = 0;
        }
    }
};
const CompressTable kCompress;

// compact_scalar with AVX2 compress-stores (8 lanes a step, whole vectors stored at the
// write position: in place, they only overwrite lanes already read).
__attribute__((target("avx2,popcnt"))) std::int64_t compact_avx2(
    const float* src, std::int64_t m, float lo, float hi, float* dst, std::int64_t* below) {
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    std::int64_t j = 0, nb = 0, i = 0;
    for (; i + 8 <= m; i += 8) {
        const __m256 x = _mm256_loadu_ps(src + i);
        const __m256 lt = _mm256_cmp_ps(x, vlo, _CMP_LT_OQ);
        const __m256 in = _mm256_and_ps(_mm256_cmp_ps(x, vlo, _CMP_GE_OQ),
                                        _mm256_cmp_ps(x, vhi, _CMP_LE_OQ));
        const int mk = _mm256_movemask_ps(in);
        nb += __builtin_popcount(static_cast<unsigned>(_mm256_movemask_ps(lt)));
        const __m256i p =
            _mm256_load_si256(reinterpret_cast<const __m256i*>(kCompress.perm[mk]));
        _mm256_storeu_ps(dst + j, _mm256_permutevar8x32_ps(x, p));
        j += __builtin_popcount(static_cast<unsigned>(mk));
    }
    return compact_from(src, i, m, lo, hi, dst, j, nb, below);
}

bool have_avx2() {
    static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
    return yes;
}
#endif

std::int64_t compact(const float* src, std::int64_t m, float lo, float hi, float* dst,
                     std::int64_t* below) {
#ifdef MM_X86_DISPATCH
    if (have_avx2()) return compact_avx2(src, m, lo, hi, dst, below);
#endif
    return compact_scalar(src, m, lo, hi, dst, below);
}

struct MeshWork {
    std::vector<float> values, sorted, kept, sample;
    std::vector<std::uint32_t> ka, kb;
};

// Order statistics of a mesh's n values: the value of rank r (0-based, in the order of
// the radix sort, as the reference's sorted copy). Only a band of ranks about the median
// is sorted (the clipping loop only asks for medians of nearly the whole mesh); a rank
// outside it sorts everything once.
class RankedValues {
  public:
    RankedValues(MeshWork& wk, const float* v, std::int64_t n) : wk_(wk), v_(v), n_(n) {
        if (n < 4096) {
            sort_all();
            return;
        }
        // band thresholds from a 1-in-16 sample: its quantiles at 1/2 -+ 4%
        std::vector<float>& smp = wk.sample;
        const std::int64_t ns = n / 16;
        smp.resize(ns);
        for (std::int64_t i = 0; i < ns; ++i) smp[i] = v[16 * i];
        const std::int64_t d = ns / 25;
        std::nth_element(smp.begin(), smp.begin() + (ns / 2 - d), smp.end());
        const float t1 = smp[ns / 2 - d];
        std::nth_element(smp.begin() + (ns / 2 - d), smp.begin() + (ns / 2 + d), smp.end());
        const float t2 = smp[ns / 2 + d];
        // the values in [t1, t2], and how many lie below
        wk.kept.resize(n);
        float* band = wk.kept.data();
        std::int64_t below = 0;
        const std::int64_t nb = compact(v, n, t1, t2, band, &below);
        first_ = below;
        wk.sorted.resize(n);
        radix_sort(band, nb, wk.ka, wk.kb, wk.sorted.data());
        count_ = nb;
    }

    float operator[](std::int64_t r) {
        if (r < first_ || r >= first_ + count_) sort_all();
        return wk_.sorted[r - first_];
    }

  private:
    void sort_all() {
        wk_.sorted.resize(n_);
        radix_sort(v_, n_, wk_.ka, wk_.kb, wk_.sorted.data());
        first_ = 0;
        count_ = n_;
    }

    MeshWork& wk_;
    const float* v_;
    std::int64_t n_, first_ = 0, count_ = 0;
};

// Median of the ranks [lo, hi) as np.median computes it.
float ranked_median(RankedValues& s, std::int64_t lo, std::int64_t hi) {
    const std::int64_t n = hi - lo;
    if (n % 2) return s[lo + n / 2];
    float a = s[lo + n / 2 - 1];
    a += s[lo + n / 2];
    return a / 2.0f;
}

// One mesh: the reference's clipping loop with its float32 arithmetic. The kept set is
// always the values within a range, kept (in row-major order) in wk.kept; its ranks in
// the sorted mesh are [lo, hi).
void one_mesh(MeshWork& wk, std::int64_t n, float* level, float* sigma) {
    const float* v = wk.values.data();
    std::uint32_t any = 0;  // all zero (either sign)?
    for (std::int64_t i = 0; i < n; ++i) {
        std::uint32_t u;
        std::memcpy(&u, v + i, 4);
        any |= u & 0x7fffffffu;
    }
    if (!any) {
        *level = 0.0f;
        *sigma = 1.0f;
        return;
    }
    RankedValues s(wk, v, n);
    std::int64_t lo = 0, hi = n;
    float med = ranked_median(s, lo, hi);
    float mean, std;
    mean_std(v, n, &mean, &std);
    const float init_std = std;
    wk.kept.resize(n);
    float* k = wk.kept.data();
    const float* src = v;  // the kept values (v, then k once some are dropped)
    std::int64_t m = n;
    for (;;) {
        const float t = 3.0f * std;
        const float lower = med - t, upper = med + t;
        // drop the kept values outside [lower, upper], keeping the order; none dropped:
        // the kept set is stable (the reference's exit)
        std::int64_t below = 0;
        const std::int64_t j = compact(src, m, lower, upper, k, &below);
        src = k;
        if (j == m) break;
        lo += below;
        hi = lo + j;
        m = j;
        if (m == 0) {  // cannot happen with finite data; numpy would give NaN
            *level = *sigma = std::numeric_limits<float>::quiet_NaN();
            return;
        }
        med = ranked_median(s, lo, hi);
        mean_std(k, m, &mean, &std);
    }
    if (std > 0.8f * init_std && std < 1.2f * init_std) {
        *level = mean;
    } else {
        const float a = 2.5f * med, b = 1.5f * mean;
        *level = a - b;
    }
    *sigma = std;
}

// ---- interpolating B-spline (FITPACK conventions) ----

struct Axis {
    int k = 0;                   // degree
    std::vector<double> t;       // knots
    std::vector<double> lu;      // LU factors of the collocation matrix (m x m)
    std::vector<int> piv;
    std::int64_t m = 0;
};

// fpbspl: the k+1 non-zero B-splines at x, for t[l] <= x < t[l+1].
void bspline_basis(const std::vector<double>& t, int k, std::int64_t l, double x, double* h) {
    double hh[8];
    h[0] = 1.0;
    for (int j = 1; j <= k; ++j) {
        for (int i = 0; i < j; ++i) hh[i] = h[i];
        h[0] = 0.0;
        for (int i = 1; i <= j; ++i) {
            const double a = t[l + i], b = t[l + i - j];
            if (a == b) {
                h[i] = 0.0;
                continue;
            }
            const double f = hh[i - 1] / (a - b);
            h[i - 1] += f * (a - x);
            h[i] = f * (x - b);
        }
    }
}

// fpbisp's interval search: l in [k, m - 1] with t[l] <= x < t[l + 1].
std::int64_t find_interval(const Axis& ax, double x, std::int64_t start) {
    std::int64_t l = std::max<std::int64_t>(start, ax.k);
    while (l < ax.m - 1 && x >= ax.t[l + 1]) ++l;
    return l;
}

Axis make_axis(const std::vector<double>& x) {
    Axis ax;
    const std::int64_t m = static_cast<std::int64_t>(x.size());
    ax.m = m;
    ax.k = static_cast<int>(std::min<std::int64_t>(3, m - 1));
    const int k = ax.k;
    ax.t.assign(m + k + 1, 0.0);
    for (int i = 0; i <= k; ++i) {
        ax.t[i] = x[0];
        ax.t[m + i] = x[m - 1];
    }
    // FITPACK's knots for s = 0: data points (odd k) or mid-points (even k)
    for (std::int64_t j = 0; j < m - k - 1; ++j) {
        const std::int64_t i = j + (k + 1) / 2;
        ax.t[k + 1 + j] = (k % 2) ? x[i] : 0.5 * (x[i - 1] + x[i]);
    }
    // collocation matrix and its LU factors (partial pivoting)
    std::vector<double>& A = ax.lu;
    A.assign(m * m, 0.0);
    double h[8];
    std::int64_t l = k;
    for (std::int64_t i = 0; i < m; ++i) {
        l = find_interval(ax, x[i], l);
        bspline_basis(ax.t, k, l, x[i], h);
        for (int j = 0; j <= k; ++j) A[i * m + (l - k + j)] = h[j];
    }
    ax.piv.resize(m);
    for (std::int64_t c = 0; c < m; ++c) {
        std::int64_t p = c;
        for (std::int64_t r = c + 1; r < m; ++r)
            if (std::fabs(A[r * m + c]) > std::fabs(A[p * m + c])) p = r;
        ax.piv[c] = static_cast<int>(p);
        if (p != c)
            for (std::int64_t j = 0; j < m; ++j) std::swap(A[c * m + j], A[p * m + j]);
        const double d = A[c * m + c];
        for (std::int64_t r = c + 1; r < m; ++r) {
            const double f = (A[r * m + c] /= d);
            if (f != 0.0)
                for (std::int64_t j = c + 1; j < m; ++j) A[r * m + j] -= f * A[c * m + j];
        }
    }
    return ax;
}

// Solve A y = b in place (b has stride `stride`).
void lu_solve(const Axis& ax, double* b, std::int64_t stride) {
    const std::int64_t m = ax.m;
    const double* A = ax.lu.data();
    for (std::int64_t c = 0; c < m; ++c) {
        const std::int64_t p = ax.piv[c];
        if (p != c) std::swap(b[c * stride], b[p * stride]);
    }
    for (std::int64_t r = 0; r < m; ++r) {
        double s = b[r * stride];
        for (std::int64_t j = 0; j < r; ++j) s -= A[r * m + j] * b[j * stride];
        b[r * stride] = s;
    }
    for (std::int64_t r = m - 1; r >= 0; --r) {
        double s = b[r * stride];
        for (std::int64_t j = r + 1; j < m; ++j) s -= A[r * m + j] * b[j * stride];
        b[r * stride] = s / A[r * m + r];
    }
}

// Basis of every pixel 0..n-1 of an axis: interval start (l - k) and k+1 weights.
void axis_weights(const Axis& ax, std::int64_t n, std::vector<std::int64_t>& first,
                  std::vector<double>& wts) {
    const int k1 = ax.k + 1;
    first.resize(n);
    wts.assign(n * 4, 0.0);
    const double tb = ax.t[ax.k], te = ax.t[ax.m];
    std::int64_t l = ax.k;
    double h[8];
    for (std::int64_t p = 0; p < n; ++p) {
        const double x = std::min(std::max(static_cast<double>(p), tb), te);
        l = find_interval(ax, x, l);
        bspline_basis(ax.t, ax.k, l, x, h);
        first[p] = l - ax.k;
        for (int j = 0; j < k1; ++j) wts[p * 4 + j] = h[j];
    }
}

std::vector<double> axis_nodes(std::int64_t nmesh, std::int64_t mesh, std::int64_t off) {
    // np.arange(-mesh/2, (nmesh + 1) * mesh + 1, mesh) + off: the mesh centres and one
    // pad node on each side
    std::vector<double> x(nmesh + 2);
    for (std::int64_t j = 0; j < nmesh + 2; ++j)
        x[j] = (-0.5 * static_cast<double>(mesh) + static_cast<double>(j * mesh)) +
               static_cast<double>(off);
    return x;
}

}  // namespace

MeshLayout mesh_layout(std::int64_t h, std::int64_t w, std::int64_t mesh_size) {
    if (mesh_size < 1) throw std::invalid_argument("mesh_size must be positive");
    if (h < 1 || w < 1) throw std::invalid_argument("the image is empty");
    MeshLayout L;
    L.mesh_h = std::min(mesh_size, h);
    L.mesh_w = std::min(mesh_size, w);
    L.ny = h / L.mesh_h;
    L.nx = w / L.mesh_w;
    L.off_y = (h % L.mesh_h) / 2;
    L.off_x = (w % L.mesh_w) / 2;
    return L;
}

void mesh_statistics(const float* image, std::int64_t h, std::int64_t w, const MeshLayout& L,
                     float* level, float* sigma) {
    const std::int64_t nmesh = L.ny * L.nx;
    const std::int64_t n = L.mesh_h * L.mesh_w;
    (void)h;
#pragma omp parallel
    {
        MeshWork wk;
        wk.values.resize(n);
#pragma omp for schedule(dynamic, 1)
        for (std::int64_t b = 0; b < nmesh; ++b) {
            const std::int64_t my = b / L.nx, mx = b % L.nx;
            const std::int64_t y0 = L.off_y + my * L.mesh_h, x0 = L.off_x + mx * L.mesh_w;
            float* dst = wk.values.data();
            for (std::int64_t y = 0; y < L.mesh_h; ++y) {
                const float* src = image + (y0 + y) * w + x0;
                for (std::int64_t x = 0; x < L.mesh_w; ++x) *dst++ = sanitize(src[x]);
            }
            one_mesh(wk, n, level + b, sigma + b);
        }
    }
}

void clean_grid(double* grid, std::int64_t ny, std::int64_t nx) {
    const std::int64_t n = ny * nx;
    std::vector<char> keep(n, 1);
    std::vector<double> kept, srt;
    for (int round = 0;; ++round) {
        kept.clear();
        for (std::int64_t i = 0; i < n; ++i)
            if (keep[i]) kept.push_back(grid[i]);
        srt = kept;
        std::sort(srt.begin(), srt.end());
        const double med = sorted_median(srt.data(), 0, static_cast<std::int64_t>(srt.size()));
        double mean, std;
        mean_std(kept.data(), static_cast<std::int64_t>(kept.size()), &mean, &std);
        const double upper = med + 3.0 * std, lower = med - 3.0 * std;
        std::vector<std::int64_t> out;
        for (std::int64_t i = 0; i < n; ++i)
            if (keep[i] && (grid[i] > upper || grid[i] < lower)) out.push_back(i);
        if (out.empty() || round == 5) break;
        for (std::int64_t i : out) keep[i] = 0;
    }
    std::vector<std::int64_t> bad;
    for (std::int64_t i = 0; i < n; ++i)
        if (!keep[i]) bad.push_back(i);
    if (bad.empty()) return;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (std::int64_t i : bad) grid[i] = nan;
    // replace each rejected node by the mean of its valid 3x3 neighbours, sweeping in
    // row-major order with updated values, until no NaN is left (reference order)
    for (;;) {
        bool any_nan = false;
        for (std::int64_t i = 0; i < n; ++i) any_nan |= std::isnan(grid[i]);
        if (!any_nan) break;
        bool changed = false;
        for (std::int64_t i : bad) {
            const std::int64_t y = i / nx, x = i % nx;
            double vals[9];
            int c = 0;
            for (std::int64_t yy = y - 1; yy <= y + 1; ++yy)
                for (std::int64_t xx = x - 1; xx <= x + 1; ++xx)
                    if (yy >= 0 && yy < ny && xx >= 0 && xx < nx && !std::isnan(grid[yy * nx + xx]))
                        vals[c++] = grid[yy * nx + xx];
            if (c) {
                grid[i] = pairwise_sum<double>([&vals](std::int64_t j) { return vals[j]; }, 0, c) /
                          static_cast<double>(c);
                changed = true;
            }
        }
        if (!changed) break;  // all nodes rejected (impossible); avoid looping forever
    }
}

void filter_grid(const double* grid, std::int64_t ny, std::int64_t nx, double* padded) {
    const std::int64_t py = ny + 2, px = nx + 2;
    std::vector<double> e(py * px);
    for (std::int64_t y = 0; y < py; ++y) {
        const std::int64_t sy = std::min(std::max<std::int64_t>(y - 1, 0), ny - 1);
        for (std::int64_t x = 0; x < px; ++x) {
            const std::int64_t sx = std::min(std::max<std::int64_t>(x - 1, 0), nx - 1);
            e[y * px + x] = grid[sy * nx + sx];
        }
    }
    for (std::int64_t y = 0; y < py; ++y) {
        for (std::int64_t x = 0; x < px; ++x) {
            double v[9];
            int c = 0;
            for (std::int64_t yy = y - 1; yy <= y + 1; ++yy)
                for (std::int64_t xx = x - 1; xx <= x + 1; ++xx)
                    v[c++] = (yy >= 0 && yy < py && xx >= 0 && xx < px) ? e[yy * px + xx] : 0.0;
            std::nth_element(v, v + 4, v + 9);
            padded[y * px + x] = v[4];
        }
    }
}

SplineRows spline_rows(const double* padded, const MeshLayout& L, std::int64_t h,
                       std::int64_t w) {
    const Axis ay = make_axis(axis_nodes(L.ny, L.mesh_h, L.off_y));
    const Axis ax = make_axis(axis_nodes(L.nx, L.mesh_w, L.off_x));
    const std::int64_t my = ay.m, mx = ax.m;
    // spline coefficients C = Ay^-1 Z Ax^-T
    std::vector<double> C(padded, padded + my * mx);
    for (std::int64_t j = 0; j < mx; ++j) lu_solve(ay, C.data() + j, mx);
    for (std::int64_t i = 0; i < my; ++i) lu_solve(ax, C.data() + i * mx, 1);
    SplineRows S;
    S.w = w;
    S.ky1 = ay.k + 1;
    std::vector<std::int64_t> fx;
    std::vector<double> wx;
    axis_weights(ay, h, S.fy, S.wy);
    axis_weights(ax, w, fx, wx);
    // D = C evaluated along x at every column: my x w
    S.D.resize(my * w);
    const int kx1 = ax.k + 1;
    for (std::int64_t i = 0; i < my; ++i)
        for (std::int64_t x = 0; x < w; ++x) {
            double s = 0.0;
            for (int b = 0; b < kx1; ++b) s += C[i * mx + fx[x] + b] * wx[x * 4 + b];
            S.D[i * w + x] = s;
        }
    return S;
}

namespace {

MM_ALWAYS_INLINE void spline_row_impl(const SplineRows& S, std::int64_t y,
                                                           float* o) {
    const std::int64_t w = S.w;
    const double* d0 = S.D.data() + S.fy[y] * w;
    const double* wyy = S.wy.data() + y * 4;
    if (S.ky1 == 4) {
        const double a0 = wyy[0], a1 = wyy[1], a2 = wyy[2], a3 = wyy[3];
        const double *d1 = d0 + w, *d2 = d1 + w, *d3 = d2 + w;
        for (std::int64_t x = 0; x < w; ++x)
            o[x] = static_cast<float>(a0 * d0[x] + a1 * d1[x] + a2 * d2[x] + a3 * d3[x]);
    } else {
        for (std::int64_t x = 0; x < w; ++x) {
            double s = 0.0;
            for (int a = 0; a < S.ky1; ++a) s += wyy[a] * d0[a * w + x];
            o[x] = static_cast<float>(s);
        }
    }
}

#ifdef MM_X86_DISPATCH
// The same with 4-lane AVX vectors (same operations, no fused multiply-adds).
__attribute__((target("avx2"))) void spline_row_avx2(const SplineRows& S, std::int64_t y,
                                                     float* o) {
    spline_row_impl(S, y, o);
}
#endif

}  // namespace

void spline_row(const SplineRows& S, std::int64_t y, float* o) {
#ifdef MM_X86_DISPATCH
    if (have_avx2()) {
        spline_row_avx2(S, y, o);
        return;
    }
#endif
    spline_row_impl(S, y, o);
}

void background_nodes(const float* image, std::int64_t h, std::int64_t w, const MeshLayout& L,
                      double* level_nodes, double* sigma_nodes) {
    const std::int64_t n = L.ny * L.nx;
    std::vector<float> lv(n), sg(n);
    mesh_statistics(image, h, w, L, lv.data(), sg.data());
    std::vector<double> g(n);
    for (int which = 0; which < 2; ++which) {
        const std::vector<float>& src = which ? sg : lv;
        for (std::int64_t i = 0; i < n; ++i) g[i] = src[i];
        clean_grid(g.data(), L.ny, L.nx);
        filter_grid(g.data(), L.ny, L.nx, which ? sigma_nodes : level_nodes);
    }
}

void background_splines(const float* image, std::int64_t h, std::int64_t w,
                        std::int64_t mesh_size, SplineRows* level, SplineRows* sigma) {
    const MeshLayout L = mesh_layout(h, w, mesh_size);
    std::vector<double> lnodes((L.ny + 2) * (L.nx + 2)), snodes(lnodes.size());
    background_nodes(image, h, w, L, lnodes.data(), snodes.data());
    *level = spline_rows(lnodes.data(), L, h, w);
    *sigma = spline_rows(snodes.data(), L, h, w);
}

void estimate_background(const float* image, std::int64_t h, std::int64_t w,
                         std::int64_t mesh_size, float* level, float* sigma) {
    SplineRows sl, ss;
    background_splines(image, h, w, mesh_size, &sl, &ss);
#pragma omp parallel for schedule(dynamic, 32)
    for (std::int64_t y = 0; y < h; ++y) {
        spline_row(sl, y, level + y * w);
        spline_row(ss, y, sigma + y * w);
    }
}

void compress_image(const float* image, std::int64_t h, std::int64_t w,
                    std::int64_t mesh_size, float* out) {
    SplineRows sl, ss;
    background_splines(image, h, w, mesh_size, &sl, &ss);
#pragma omp parallel
    {
        std::vector<float> lv(w), sg(w);
#pragma omp for schedule(dynamic, 32)
        for (std::int64_t y = 0; y < h; ++y) {
            spline_row(sl, y, lv.data());
            spline_row(ss, y, sg.data());
            asinh_compress_row(image + y * w, lv.data(), sg.data(), out + y * w, w);
        }
    }
}

}  // namespace maximask

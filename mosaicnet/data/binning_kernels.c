/*
 * Compiled event binning (mosaicnet/data/binning.py, bin_recordings).
 *
 * Compiled twice by mosaicnet/data/binning.py through mosaicnet/native_build.py:
 * with -DREAL=float and -DREAL=double, the output's type. The arithmetic is the
 * numpy path's, operation for operation: a spike is inside the window where its
 * float32 time is below the float32 window, and its bin is the float64 product
 * of its time and n_bins / window_s, truncated, at most the last bin.
 *
 * Each output row is one recording in one spatial view; rows are independent,
 * so they are spread over OpenMP threads, and each thread zeroes and fills its
 * own rows (no scatter of many threads into one array).
 */
#include <stdint.h>
#include <string.h>

#ifndef REAL
#error "compile with -DREAL=float or -DREAL=double"
#endif

/*
 * Bin row r from events [starts[r], ends[r]) of the flat arrays: keep channels
 * with unit % stride == views[r], in column unit / stride; count into
 * out[r, bin, column] (the row is zeroed first) and the kept spikes at or after
 * the window into dropped[r].
 */
void bin_recordings(const float *times, const uint16_t *units, const int64_t *starts,
                    const int64_t *ends, const int64_t *views, long n_rows, long n_bins,
                    long width, long stride, float window, double scale, REAL *out,
                    int64_t *dropped, int n_threads)
{
    const long row_size = n_bins * width;
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (long r = 0; r < n_rows; ++r) {
        REAL *row = out + r * row_size;
        const long view = views[r];
        int64_t late = 0;
        memset(row, 0, (size_t)row_size * sizeof(REAL));
        for (int64_t e = starts[r]; e < ends[r]; ++e) {
            const long unit = units[e];
            if (unit % stride != view)
                continue;
            const float t = times[e];
            if (!(t < window)) {
                ++late;
                continue;
            }
            long bin = (long)((double)t * scale);
            if (bin > n_bins - 1)
                bin = n_bins - 1;
            row[bin * width + unit / stride] += (REAL)1;
        }
        dropped[r] = late;
    }
}

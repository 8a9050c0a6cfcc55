/* The FMA ceiling of one core: twelve independent chains of 8-wide f32 fused multiply-adds.
 * No GEMM can beat this figure; BENCHMARKS.md compares W4 and the GEMM libraries with it.
 *
 *   gcc -O3 -mavx2 -mfma benches/peers/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak
 *   (/tmp/fma_peak & /tmp/fma_peak; wait)      # both cores: add the two figures
 */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

int main(void) {
    __m256 acc[12];
    const __m256 scale = _mm256_set1_ps(0.999999f), shift = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps((float)i);
    const long rounds = 200000000;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long r = 0; r < rounds; r++)
        for (int i = 0; i < 12; i++) acc[i] = _mm256_fmadd_ps(acc[i], scale, shift);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    float keep = 0; /* printed so that the loop is not optimised away */
    for (int i = 0; i < 12; i++) keep += acc[i][0];
    printf("%.1f GFLOP/s (checksum %f)\n", rounds * 12.0 * 16 / seconds / 1e9, keep);
    return 0;
}

/*
 * Probe (issue 16): single-thread cblas_sgemm throughput of the system OpenBLAS on the GEMM shapes an im2col
 * implementation of the compiled plan's convolutions would run (M x N x K: forward rows = pixels, N = Cout,
 * K = 9 Cin; filter gradient Cout x 9Cin x pixels). Process CPU time, best of 10.
 *   gcc -O2 openblas-sgemm.c -o /tmp/openblas-sgemm -I/usr/include/x86_64-linux-gnu/openblas-pthread -lopenblas
 *   OPENBLAS_NUM_THREADS=1 /tmp/openblas-sgemm            (OPENBLAS_CORETYPE=SkylakeX to force AVX-512 kernels)
 * Compare with the plan's per-op CPU time: fedsfda bench train --profile (BENCHMARKS.md, engine section).
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t);return t.tv_sec*1e3+t.tv_nsec*1e-6;}
int main(int argc,char**argv){
  int shapes[][3]={{32768,16,144},{32768,16,432},{8192,32,864},{8192,32,288},{2048,64,576},{16,432,32768},{32,864,8192},{64,576,2048}};
  printf("%s\n", openblas_get_config()); printf("core %s threads %d\n", openblas_get_corename(), openblas_get_num_threads());
  for(int s=0;s<8;s++){int M=shapes[s][0],N=shapes[s][1],K=shapes[s][2];
    float*A=malloc(4L*M*K),*B=malloc(4L*K*N),*C=malloc(4L*M*N);
    for(long i=0;i<(long)M*K;i++)A[i]=i%7*0.1f; for(long i=0;i<(long)K*N;i++)B[i]=i%5*0.1f;
    cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasNoTrans,M,N,K,1,A,K,B,N,0,C,N);
    double best=1e9; for(int r=0;r<10;r++){double t=now();cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasNoTrans,M,N,K,1,A,K,B,N,0,C,N);t=now()-t;if(t<best)best=t;}
    printf("M=%d N=%d K=%d cpu %.3f ms  %.1f GFLOP/s-cpu\n",M,N,K,best,2.0*M*N*K/best/1e6);
    free(A);free(B);free(C);}
}

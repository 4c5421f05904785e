"""The network run's parts (``benchmarks/bench_network.py``): the chain reader, the cluster of
real ``spotcheck`` processes, the dApp load generator, the process sampler, the analysis and
the plots."""

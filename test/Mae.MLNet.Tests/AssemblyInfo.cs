// libtorch keeps global state (random generator, thread pool): tests run one at a time.
[assembly: DoNotParallelize]

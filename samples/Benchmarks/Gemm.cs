using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Benchmarks;

/// <summary>The device's matmul rate: n×n×n products in a given dtype, GFLOP/s = 2n³ / time (on CUDA each product
/// is timed to the end of its kernel: synchronize before and after).</summary>
public static class Gemm
{
    public static Stats Measure(ScalarType dtype, Device? device = null, int n = 1024, int iterations = 20, int warmup = 3)
    {
        device ??= CPU;
        bool gpu = device.type == DeviceType.CUDA;
        using var scope = NewDisposeScope();
        var a = randn(n, n).to(dtype, device);
        var b = randn(n, n).to(dtype, device);
        for (int i = 0; i < warmup; i++) a.matmul(b).Dispose();
        var rates = new List<double>();
        for (int i = 0; i < iterations; i++)
        {
            if (gpu) cuda.synchronize(device);
            var sw = Stopwatch.StartNew();
            var c = a.matmul(b);
            if (gpu) cuda.synchronize(device);
            rates.Add(2.0 * n * n * n / sw.Elapsed.TotalSeconds / 1e9);
            c.Dispose();
        }
        return Stats.Of(rates);
    }
}

/// <summary>Best and median of repeated measurements (higher is better).</summary>
public readonly record struct Stats(double Best, double Median, int Count)
{
    public static Stats Of(IReadOnlyCollection<double> values)
    {
        if (values.Count == 0) throw new ArgumentException("No measurements.", nameof(values));
        var sorted = values.OrderBy(v => v).ToArray();
        double median = sorted.Length % 2 == 1
            ? sorted[sorted.Length / 2]
            : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
        return new Stats(sorted[^1], median, sorted.Length);
    }
}

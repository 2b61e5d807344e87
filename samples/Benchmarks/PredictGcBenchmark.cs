using System.Diagnostics;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet.Benchmarks;

/// <summary>
/// What a GC-free region per PredictionEngine row cost (issue 14, item 6). Until then every inference batch and row
/// ran inside <c>GC.TryStartNoGCRegion(16 MiB)</c> (NoGcScope), which starts with a full blocking collection, so its
/// price grows with the live heap. "region per row" wraps each Predict call exactly as NoGcScope did; "plain" is what
/// the library does now. Both run in one process, alternating, with 0 and with --live-objects small objects kept alive.
/// </summary>
static class PredictGcBenchmark
{
    sealed class Row { public float[] Pixels { get; set; } = Array.Empty<float>(); }
    sealed class Out { public float[] Features { get; set; } = Array.Empty<float>(); }

    public sealed record Result(long LiveObjects, string Mode, double MsPerRow, double Gen2PerRow);

    public static List<Result> Run(string preset, int rows, int rounds, int liveObjects, TextWriter log)
    {
        var config = MaeConfig.Preset(preset);
        int length = config.InChannels * config.ImageSize * config.ImageSize;
        TorchRuntime.Seed(1);
        var ml = new MLContext(0);
        using var encoder = new MaeEncoder(config);
        var definition = SchemaDefinition.Create(typeof(Row));
        definition["Pixels"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, length);
        var rng = new Random(1);
        var row = new Row { Pixels = Enumerable.Range(0, length).Select(_ => (float)rng.NextDouble()).ToArray() };
        var data = ml.Data.LoadFromEnumerable(new[] { row }, definition);
        var model = ml.Transforms.MaeFeaturize("Features", "Pixels", encoder, MaePooling.Cls, batchSize: 1, device: MaeDevice.Cpu).Fit(data);
        var engine = ml.Model.CreatePredictionEngine<Row, Out>(model, inputSchemaDefinition: definition);
        for (int i = 0; i < 20; i++) engine.Predict(row);

        (double Ms, double Gen2) Measure(bool region)
        {
            int gen2 = GC.CollectionCount(2);
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < rows; i++)
            {
                bool started = region && GC.TryStartNoGCRegion(16L << 20);
                try { engine.Predict(row); }
                finally { if (started && System.Runtime.GCSettings.LatencyMode == System.Runtime.GCLatencyMode.NoGCRegion) GC.EndNoGCRegion(); }
            }
            return (sw.Elapsed.TotalMilliseconds / rows, (GC.CollectionCount(2) - gen2) / (double)rows);
        }

        var results = new List<Result>();
        object[]? live = null;
        foreach (long count in new long[] { 0, liveObjects })
        {
            if (count > 0)
            {
                log.WriteLine($"predict-gc: allocating {count} live objects");
                live = new object[count];
                for (long i = 0; i < count; i++) live[i] = new object();
            }
            var times = new Dictionary<bool, List<(double, double)>> { [true] = new(), [false] = new() };
            for (int r = 0; r < rounds; r++)
                foreach (bool region in r % 2 == 0 ? new[] { true, false } : new[] { false, true })
                    times[region].Add(Measure(region));
            foreach (bool region in new[] { true, false })
            {
                var ms = times[region].Select(t => t.Item1).OrderBy(x => x).ToList();
                results.Add(new Result(count, region ? "GC-free region per row (before)" : "plain (now)", ms[ms.Count / 2], times[region].Average(t => t.Item2)));
            }
        }
        GC.KeepAlive(live);
        return results;
    }
}

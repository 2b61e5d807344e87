using System.Diagnostics;
using Mae.MLNet.Evaluation;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet.Benchmarks;

/// <summary>The linear probe's memory on views the caller has cached already (as the quickstart shares them with the kNN
/// probe): <see cref="MaeLinearProbe.Options.CacheInputs"/> true (the probe caches its own copy) against false, each run in
/// a fresh child process so that each peak resident set is its own, alternating round by round.</summary>
static class LinearProbeBenchmark
{
    public sealed record Sample(bool CacheInputs, double Seconds, double BeforeMiB, double PeakMiB, double Accuracy);

    public static List<Sample> Run(int rows, int width, int rounds, TextWriter log)
    {
        var samples = new List<Sample>();
        for (int round = 0; round < rounds; round++)
            foreach (bool cache in new[] { true, false })
            {
                var (output, code) = ChildRun.Of(["--bench", "probe-memory-child", "--pm-rows", rows.ToString(), "--pm-width", width.ToString(),
                    "--pm-cache", cache ? "true" : "false"]);
                var line = output.Split('\n').FirstOrDefault(l => l.StartsWith("PROBE ", StringComparison.Ordinal))
                           ?? throw new InvalidOperationException($"the child (cache {cache}) exited with {code} and printed no result:\n{output}");
                var p = line.Split(' ');
                samples.Add(new Sample(cache, double.Parse(p[1]), double.Parse(p[2]), double.Parse(p[3]), double.Parse(p[4])));
                log.WriteLine($"round {round + 1}: {line}");
            }
        return samples;
    }

    /// <summary>The child: <paramref name="rows"/> training and rows / 5 test rows of <paramref name="width"/> features
    /// (10 classes, each a unit Gaussian shifted 0.3 on every tenth feature), both cached and read once as a caller sharing
    /// them would have; then the probe with two L2 candidates. Prints seconds, resident MiB before, peak MiB, accuracy.</summary>
    public static void ChildMain(int rows, int width, bool cacheInputs)
    {
        var rng = new Random(1);
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        Row[] Rows(int count) => Enumerable.Range(0, count).Select(_ =>
        {
            int c = rng.Next(10);
            var f = new float[width];
            for (int j = 0; j < width; j++) f[j] = (float)(Normal() + (j % 10 == c ? 0.3 : 0));
            return new Row { Features = f, Label = c };
        }).ToArray();
        var ml = new MLContext(0);
        var schema = SchemaDefinition.Create(typeof(Row));
        schema[nameof(Row.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, width);
        var train = ml.Data.Cache(ml.Data.LoadFromEnumerable(Rows(rows), schema));
        var test = ml.Data.Cache(ml.Data.LoadFromEnumerable(Rows(rows / 5), schema));
        foreach (var view in new[] { train, test })   // fill both caches, as the kNN probe's pass would
        {
            using var cursor = view.GetRowCursor(view.Schema);
            var get = cursor.GetGetter<VBuffer<float>>(view.Schema[nameof(Row.Features)]);
            var buffer = default(VBuffer<float>);
            while (cursor.MoveNext()) get(ref buffer);
        }
        GC.Collect();
        double before = MemoryProbe.ResidentMiB();
        var clock = Stopwatch.StartNew();
        var result = MaeLinearProbe.Evaluate(train, test, nameof(Row.Features), nameof(Row.Label),
            new MaeLinearProbe.Options { L2PerRow = new[] { 1e-3, 1e-4 }, CacheInputs = cacheInputs });
        Console.WriteLine($"PROBE {clock.Elapsed.TotalSeconds:R} {before:R} {MemoryProbe.PeakResidentMiB():R} {result.Accuracy:R}");
        GC.KeepAlive(train);
        GC.KeepAlive(test);
    }

    sealed class Row
    {
        public float[] Features { get; set; } = Array.Empty<float>();
        public int Label { get; set; }
    }
}

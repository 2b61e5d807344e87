using System.Diagnostics;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet.Benchmarks;

/// <summary>Featurizing throughput through the ML.NET transform (TorchSharp) and through the saved-and-loaded model
/// (ML.NET's OnnxTransformer + ONNX Runtime), and peak memory of featurizing many rows.</summary>
static class FeaturizeBenchmark
{
    sealed class Row
    {
        public float[] Pixels { get; set; } = Array.Empty<float>();
    }

    static IDataView Rows(MLContext ml, MaeConfig config, int count, int seed)
    {
        int length = config.InChannels * config.ImageSize * config.ImageSize;
        var rng = new Random(seed);
        var one = Enumerable.Range(0, length).Select(_ => (float)rng.NextDouble()).ToArray();
        var definition = SchemaDefinition.Create(typeof(Row));
        definition["Pixels"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, length);
        // The same pixels in every row: generation cost stays out of the measurement; the model cannot tell.
        return ml.Data.LoadFromEnumerable(Enumerable.Range(0, count).Select(_ => new Row { Pixels = one }), definition);
    }

    /// <summary>Pulls every row's Features through a cursor; returns seconds.</summary>
    static double Drain(IDataView view)
    {
        var sw = Stopwatch.StartNew();
        using var cursor = view.GetRowCursor(new[] { view.Schema["Features"] });
        var getter = cursor.GetGetter<VBuffer<float>>(view.Schema["Features"]);
        VBuffer<float> value = default;
        while (cursor.MoveNext()) getter(ref value);
        return sw.Elapsed.TotalSeconds;
    }

    public sealed record Throughput(string Engine, int Images, double Seconds)
    {
        public double ImagesPerSecond => Images / Seconds;
    }

    public static List<Throughput> Run(MaeConfig config, int batch, int images, TextWriter log)
    {
        var ml = new MLContext(seed: 0);
        TorchRuntime.Seed(0);
        var encoder = new MaeEncoder(config);
        var warm = Rows(ml, config, batch, 1);
        var data = Rows(ml, config, images, 2);
        var transformer = ml.Transforms.MaeFeaturize("Features", "Pixels", encoder, MaePooling.Cls, batch, MaeDevice.Cpu).Fit(warm);
        var results = new List<Throughput>();

        log.WriteLine($"featurize: TorchSharp warm-up ({batch} images)");
        Drain(transformer.Transform(warm));
        log.WriteLine($"featurize: TorchSharp, {images} images in batches of {batch}");
        results.Add(new("TorchSharp (MaeFeaturize, batched)", images, Drain(transformer.Transform(data))));

        string zip = Path.Combine(Path.GetTempPath(), $"mae-bench-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(transformer, warm.Schema, zip);
            var loaded = new MLContext(seed: 0).Model.Load(zip, out _);
            log.WriteLine("featurize: ONNX Runtime warm-up");
            Drain(loaded.Transform(warm));
            log.WriteLine($"featurize: ONNX Runtime (loaded zip, row by row), {images} images");
            results.Add(new("ONNX Runtime (saved zip → OnnxTransformer)", images, Drain(loaded.Transform(data))));
        }
        finally { File.Delete(zip); }
        return results;
    }

    /// <summary>Featurizes <paramref name="rows"/> rows in this process and returns the peak resident set (VmHWM, MiB).</summary>
    public static (double Seconds, double PeakMiB) PeakMemory(MaeConfig config, int rows, int batch)
    {
        var ml = new MLContext(seed: 0);
        var encoder = new MaeEncoder(config);
        var data = Rows(ml, config, rows, 3);
        var transformer = ml.Transforms.MaeFeaturize("Features", "Pixels", encoder, MaePooling.Cls, batch, MaeDevice.Cpu).Fit(data);
        double seconds = Drain(transformer.Transform(data));
        return (seconds, MemoryProbe.PeakResidentMiB());
    }
}

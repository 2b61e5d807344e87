using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using Mae.MLNet.Tests.Model;
using Mae.MLNet.FineTuning;
using Mae.MLNet.Input;
using Mae.MLNet.Pretraining;
using Mae.MLNet.Training;
using static TorchSharp.torch;

namespace Mae.MLNet.Benchmarks;

/// <summary>
/// Correctness on a CUDA device (`--bench gpucheck --device cuda --fixtures DIR`), against independent references:
/// the official models_mae.py outputs in the test fixtures (made by test/Mae.MLNet.Tests/Fixtures/make_reference_fixtures.py,
/// read by the tests' own ReferenceFixture),
/// the CPU path, and the saved model zip scored by ONNX Runtime on the CPU. Prints a table; returns false if any
/// check fails. The same checks run on the CPU in the test suite; this is what a GPU adds (kernels, devices, TF32).
/// </summary>
public static class GpuCheck
{
    sealed record Row(string Check, string Value, string Limit, bool Pass);

    public static bool Run(Device device, string fixtures, TextWriter output, TextWriter log)
    {
        var rows = new List<Row>();
        var target = device.type == DeviceType.CUDA ? MaeDevice.Cuda : MaeDevice.Cpu;
        TorchRuntime.AllowTf32(false); // parity in full fp32 first
        foreach (var name in new[] { "a", "b", "c" }) Parity(device, fixtures, name, rows, log);
        Featurize(target, rows, log);
        Pretrain(target, rows, log);
        FineTune(target, rows, log);

        output.WriteLine($"## CUDA checks on {device} ({Machine.GpuName()})");
        output.WriteLine();
        output.WriteLine("| check | value | limit | pass |");
        output.WriteLine("|---|---:|---:|:---:|");
        foreach (var r in rows) output.WriteLine($"| {r.Check} | {r.Value} | {r.Limit} | {(r.Pass ? "yes" : "**NO**")} |");
        output.WriteLine();
        return rows.All(r => r.Pass);
    }

    static double RelErr(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        var a = actual.detach().to(float64).cpu();
        var b = expected.detach().to(float64).cpu();
        return (a - b).abs().max().item<double>() / Math.Max(b.abs().max().item<double>(), 1e-12);
    }

    static bool Same(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        return a.cpu().eq(b.cpu().to(a.dtype)).all().item<bool>();
    }

    static void Add(List<Row> rows, string check, double value, double limit)
        => rows.Add(new Row(check, value.ToString("E2"), "≤ " + limit.ToString("E0"), value <= limit));

    /// <summary>Our model on the device with the official weights and noise vs the official outputs (fp32, no TF32), and bf16.</summary>
    static void Parity(Device device, string fixtures, string name, List<Row> rows, TextWriter log)
    {
        log.WriteLine($"parity {name}: {fixtures}");
        using var fx = new ReferenceFixture(name, fixtures);
        var tensors = fx.Tensors;
        using var model = fx.BuildModel();
        model.to(device);
        using var scope = NewDisposeScope();
        var imgs = tensors["input.imgs"].to(device);
        var noise = tensors["input.noise"].to(device);
        double ratio = fx.MaskRatio;

        var (loss, pred, mask) = model.Forward(imgs, ratio, noise);
        Add(rows, $"{name}: loss vs official (fp32)", RelErr(loss, tensors["out.loss"]), 1e-4);
        Add(rows, $"{name}: pred vs official (fp32)", RelErr(pred, tensors["out.pred"]), 1e-4);
        var (latent, _, idsRestore) = model.ForwardEncoder(imgs, ratio, noise);
        Add(rows, $"{name}: latent vs official (fp32)", RelErr(latent, tensors["out.latent"]), 1e-4);
        bool exact = Same(mask, tensors["out.mask"]) && Same(idsRestore, tensors["out.ids_restore"]);
        rows.Add(new Row($"{name}: mask and ids_restore equal the official", exact ? "equal" : "differ", "equal", exact));
        if (fx.HasGrads)
        {
            loss.backward();
            double worst = model.named_parameters().Where(p => p.parameter.requires_grad)
                .Max(p => RelErr(p.parameter.grad!, tensors["grad." + p.name]));
            Add(rows, $"{name}: every gradient vs official (fp32)", worst, 1e-4);
        }
        model.ComputeDType = ScalarType.BFloat16;
        using (no_grad())
        {
            var (_, pred16, _) = model.Forward(imgs, ratio, noise);
            Add(rows, $"{name}: pred vs official (bf16 mixed precision)", RelErr(pred16, tensors["out.pred"]), 2e-2);
        }
    }

    public sealed class PixelRow
    {
        [VectorType(3 * 32 * 32)] public float[] Pixels { get; set; } = Array.Empty<float>();
        public uint Label { get; set; }
    }

    sealed class FeatureRow { public float[] Features { get; set; } = Array.Empty<float>(); }

    /// <summary>Three classes by colour cast, 3×32×32, values in [0, 1].</summary>
    static List<PixelRow> Colours(int n, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(i =>
        {
            uint label = (uint)(i % 3);
            var p = new float[3 * 32 * 32];
            for (int k = 0; k < p.Length; k++) p[k] = (float)rng.NextDouble() * 0.6f + (k / 1024 == label ? 0.4f : 0f);
            return new PixelRow { Pixels = p, Label = label };
        }).ToList();
    }

    /// <summary>MaeFeaturize on the device vs on the CPU, same encoder (ViT-B/16 width at 32 px).</summary>
    static void Featurize(MaeDevice target, List<Row> rows, TextWriter log)
    {
        log.WriteLine($"featurize: {target} vs cpu");
        var ml = new MLContext(seed: 0);
        TorchRuntime.Seed(3);
        var encoder = new MaeEncoder(MaeConfig.Tiny32);
        var data = ml.Data.LoadFromEnumerable(Colours(40, 1));
        float[][] Features(MaeDevice d) => ml.Data.CreateEnumerable<FeatureRow>(
            ml.Transforms.MaeFeaturize("Features", "Pixels", encoder, MaePooling.Mean, batchSize: 16, device: d).Fit(data).Transform(data),
            reuseRowObject: false).Select(r => r.Features).ToArray();
        var gpu = Features(target);
        var cpu = Features(MaeDevice.Cpu);
        double worst = gpu.Zip(cpu).Max(z => z.First.Zip(z.Second).Max(v => Math.Abs(v.First - v.Second)));
        double scale = cpu.Max(r => r.Max(Math.Abs));
        Add(rows, $"MaeFeaturize (Tiny32, mean pooling): {target} vs cpu, max |Δ| / max |x|", worst / scale, 1e-4);
    }

    /// <summary>MaePretrainer on the device (TF32 on): the loss falls; 2 epochs + resume to 4 vs 4 straight.</summary>
    static void Pretrain(MaeDevice target, List<Row> rows, TextWriter log)
    {
        var images = Colours(512, 2).Select(r => r.Pixels).ToList();
        string dir = Path.Combine(Path.GetTempPath(), $"mae-gpucheck-{Guid.NewGuid():N}");
        MaePretrainOptions Options(int epochs, bool resume) => new()
        {
            Epochs = epochs, WarmupEpochs = 1, BatchSize = 64, LearningRate = 1.5e-3, Seed = 7, Device = target,
            CheckpointDir = resume ? dir : null, CheckpointEvery = 1, Resume = resume, LogEvery = 1,
            Transform = new MaePretrainAugmentation(new MaeAugmentationOptions { OutputSize = 32, Channels = 3, ScaleMin = 0.5 }),
        };
        MaePretrainResult Train(bool resume, CancellationTokenSource? stopInEpoch2 = null)
        {
            var o = Options(4, resume);
            using var source = MaeImageSource.FromArrays(images, new MaeImageShape(3, 32, 32));
            using var model = MaePretrainer.CreateModel(MaeConfig.Tiny32, o);
            var progress = stopInEpoch2 is null ? null
                : new ProgressAction<MaePretrainProgress>(p => { if (p.Epoch == 2 && p.Step == 3) stopInEpoch2.Cancel(); });
            return new MaePretrainer(o).Train(model, source, progress, stopInEpoch2?.Token ?? default);
        }
        try
        {
            log.WriteLine("pretrain: 4 epochs straight");
            var straight = Train(resume: false);
            log.WriteLine("pretrain: the same run stopped in epoch 3 (checkpoints each epoch), then resumed");
            using (var cts = new CancellationTokenSource())
                try { Train(resume: true, cts); throw new InvalidOperationException("the run was not stopped"); }
                catch (OperationCanceledException) { }
            var resumed = Train(resume: true);
            var l = straight.EpochLosses;
            rows.Add(new Row($"MaePretrainer on {target} (Tiny32, 4 epochs): epoch losses",
                string.Join(" → ", l.Select(x => x.ToString("F3"))), "falls", l[^1] < l[0]));
            double worst = straight.StepLosses.Zip(resumed.StepLosses).Max(z => Math.Abs(z.First - z.Second) / Math.Abs(z.First));
            Add(rows, $"MaePretrainer on {target}: stopped in epoch 3 + resumed vs uninterrupted, step losses max relative Δ", worst, 1e-3);
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
        TorchRuntime.AllowTf32(false);
    }

    sealed class Scored
    {
        public float[] Score { get; set; } = Array.Empty<float>();
        public uint PredictedLabel { get; set; }
    }

    /// <summary>MaeFineTune on the device through ML.NET; then the saved zip (ONNX Runtime on the CPU) vs the device's scores.</summary>
    static void FineTune(MaeDevice target, List<Row> rows, TextWriter log)
    {
        log.WriteLine($"fine-tune: MaeFineTune on {target}");
        var ml = new MLContext(seed: 0);
        var train = ml.Data.LoadFromEnumerable(Colours(300, 3));
        var test = ml.Data.LoadFromEnumerable(Colours(60, 4));
        TorchRuntime.Seed(5);
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.MaeFineTune(new MaeFineTuneTrainer.Options
            {
                Encoder = new MaeEncoder(MaeConfig.Tiny32),
                Training = new FineTuning.MaeFineTuneOptions
                {
                    Epochs = 5, WarmupEpochs = 1, BatchSize = 32, LearningRate = 1e-3, Seed = 2, Device = target, LogEvery = 1000,
                    Augmentation = new MaeAugmentationOptions { OutputSize = 32, Channels = 3, ScaleMin = 0.8 },
                },
            }))
            .Fit(train);
        TorchRuntime.AllowTf32(false);
        var scored = model.Transform(test);
        double accuracy = ml.MulticlassClassification.Evaluate(scored).MicroAccuracy;
        rows.Add(new Row($"MaeFineTune on {target} (Tiny32, 300 images, 5 epochs): test accuracy, 3 colour classes", accuracy.ToString("P1"), "> 90 %", accuracy > 0.9));

        var zip = new MemoryStream();
        ml.Model.Save(model, train.Schema, zip);
        zip.Position = 0;
        var loaded = new MLContext(seed: 1).Model.Load(zip, out _);
        var before = ml.Data.CreateEnumerable<Scored>(scored, reuseRowObject: false).ToList();
        var after = ml.Data.CreateEnumerable<Scored>(loaded.Transform(test), reuseRowObject: false).ToList();
        int same = before.Zip(after).Count(z => z.First.PredictedLabel == z.Second.PredictedLabel);
        double worst = before.Zip(after).Max(z => z.First.Score.Zip(z.Second.Score).Max(s => Math.Abs(s.First - s.Second)));
        rows.Add(new Row($"saved zip (ONNX Runtime, cpu) vs {target}: identical predictions", $"{same}/{before.Count}", "all", same == before.Count));
        Add(rows, $"saved zip vs {target}: max |Δ score|", worst, 1e-4);
    }
}

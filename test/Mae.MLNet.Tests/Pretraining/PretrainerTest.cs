using System.Text;
using System.Text.Json;
using Mae.MLNet.TrainHost;
using TorchSharp;
using static TorchSharp.torch;

using Mae.MLNet.Tests.Model;
using Mae.MLNet.Input;
using Mae.MLNet.Pretraining;
using Mae.MLNet.Runtime;
using Mae.MLNet.Training;

using Mae.MLNet.Tests.Training;

namespace Mae.MLNet.Tests.Pretraining;

[TestClass]
public class PretrainerTest
{
    [TestMethod]
    public void LearningRateIsSetAtEachAccumulationBoundaryFromTheSchedule()
    {
        var o = TinyRun.Options(2);
        o.AccumIter = 2;
        o.MinLearningRate = 1e-4;
        var seen = new List<MaePretrainProgress>();
        using var source = MaeImageSource.FromArrays(TinyRun.Images(24), 3, 16, 16);
        using var model = MaePretrainer.CreateModel(TinyRun.Config, o);
        var result = new MaePretrainer(o).Train(model, source, new SyncProgress(seen.Add));

        Assert.AreEqual(6, result.StepsPerEpoch);
        Assert.AreEqual(12, seen.Count);
        Assert.AreEqual(6, result.OptimizerSteps); // 2 epochs × 6 batches / 2
        foreach (var p in seen)
        {
            long boundary = p.Step - p.Step % 2;
            double e = p.Epoch + boundary / 6.0;
            // Closed form of util/lr_sched.py: warmup 1 epoch to 1e-3, cosine to 1e-4 at epoch 2.
            double expected = e < 1 ? 1e-3 * e : 1e-4 + (1e-3 - 1e-4) * 0.5 * (1 + Math.Cos(Math.PI * (e - 1) / (2 - 1)));
            Assert.AreEqual(expected, p.LearningRate, 1e-15, $"epoch {p.Epoch} step {p.Step}");
        }
        Assert.AreEqual(0.0, seen[0].LearningRate);
        Assert.AreEqual(1e-3 * 4 / 6, seen[5].LearningRate, 1e-15);
    }

    [TestMethod]
    public void AdamWDecaysWeightsButNotBiasesNormsOrTokens()
    {
        // One AdamW step from zero state: m̂ = g and v̂ = g², so p₁ = p₀·(1 − lr·wd) − lr·g/(|g| + ε):
        // every element moves by lr after the decay factor (for |g| ≫ ε), and the decay factor is 1 in the no-decay group.
        // (Not the qkv bias: its key third gets an exactly zero gradient, softmax being invariant to it.)
        var o = TinyRun.Options(1);
        o.WarmupEpochs = 0;
        o.LearningRate = 1e-3;
        o.WeightDecay = 0.5;
        using var source = MaeImageSource.FromArrays(TinyRun.Images(4), 3, 16, 16);
        using var model = MaePretrainer.CreateModel(TinyRun.Config, o);
        var before = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        new MaePretrainer(o).Train(model, source);
        var after = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);

        double FractionMovedByLr(string name, double decay)
        {
            using var scope = NewDisposeScope();
            var moved = (after[name] - before[name] * (1 - 1e-3 * decay)).abs();
            return (moved - 1e-3).abs().lt(2e-6).to_type(ScalarType.Float32).mean().item<float>();
        }
        foreach (var name in new[] { "blocks.0.attn.qkv.weight", "decoder_pred.weight", "patch_embed.proj.weight" })
        {
            Assert.IsTrue(FractionMovedByLr(name, 0.5) > 0.9, $"{name} must be decayed: {FractionMovedByLr(name, 0.5)}");
            Assert.IsTrue(FractionMovedByLr(name, 0.0) < 0.5, $"{name} must be decayed");
        }
        foreach (var name in new[] { "cls_token", "mask_token", "norm.weight", "blocks.1.norm2.weight", "decoder_pred.bias", "blocks.0.mlp.fc1.bias" })
            Assert.IsTrue(FractionMovedByLr(name, 0.0) > 0.9, $"{name} must not be decayed: {FractionMovedByLr(name, 0.0)}");
        Assert.IsTrue(TensorAssert.Same(before["pos_embed"], after["pos_embed"]), "pos_embed is fixed");
        Assert.IsTrue(TensorAssert.Same(before["decoder_pos_embed"], after["decoder_pos_embed"]), "decoder_pos_embed is fixed");
        foreach (var t in before.Values) t.Dispose();
    }

    [TestMethod]
    public void ThreadSettingAppliesDuringTrainingAndIsRestored()
    {
        int before = Runtime.TorchRuntime.Threads;
        try
        {
            Runtime.TorchRuntime.Threads = 2;
            var o = TinyRun.Options(1); // Threads = 1
            var during = new List<int>();
            using var source = MaeImageSource.FromArrays(TinyRun.Images(4), 3, 16, 16);
            using var model = MaePretrainer.CreateModel(TinyRun.Config, o);
            new MaePretrainer(o).Train(model, source, new SyncProgress(_ => during.Add(Runtime.TorchRuntime.Threads)));
            CollectionAssert.AreEqual(new[] { 1 }, during);
            Assert.AreEqual(2, Runtime.TorchRuntime.Threads);
        }
        finally { Runtime.TorchRuntime.Threads = before; }
    }

    sealed class PoisonAt(int call) : IBatchTransform
    {
        int _calls;
        public Tensor Apply(Tensor batch) => _calls++ == call ? full_like(batch, 3e38f) : batch;
    }

    [TestMethod]
    public void NonFiniteLossStopsTrainingNamingTheStep()
    {
        var o = TinyRun.Options(2);
        o.Transform = new PoisonAt(8); // batch 8 = epoch 1, step 2 at 6 batches per epoch
        using var source = MaeImageSource.FromArrays(TinyRun.Images(24), 3, 16, 16);
        using var model = MaePretrainer.CreateModel(TinyRun.Config, o);
        var e = Assert.ThrowsExactly<MaeNonFiniteLossException>(() => new MaePretrainer(o).Train(model, source));
        Assert.AreEqual(1, e.Epoch);
        Assert.AreEqual(2, e.Step);
        Assert.AreEqual(8, e.GlobalStep);
        Assert.IsFalse(double.IsFinite(e.Loss));
        StringAssert.Contains(e.Message, "epoch 1, step 2");
    }

    [TestMethod]
    public void TransformOutputOfTheWrongSizeIsReported()
    {
        var o = TinyRun.Options(1);
        o.Transform = new Crop();
        using var source = MaeImageSource.FromArrays(TinyRun.Images(8), 3, 16, 16);
        using var model = MaePretrainer.CreateModel(TinyRun.Config, o);
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => new MaePretrainer(o).Train(model, source));
        StringAssert.Contains(e.Message, "[4, 3, 8, 8]");
        StringAssert.Contains(e.Message, "[4, 3, 16, 16]");
    }

    sealed class Crop : IBatchTransform
    {
        public Tensor Apply(Tensor batch) => batch[.., .., ..8, ..8];
    }

    [TestMethod]
    public void ProgressJsonlAndTensorBoardCarryTheStepLosses()
    {
        using var dir = new TempDir();
        var o = TinyRun.Options(2);
        o.MetricsFile = dir.File("metrics.jsonl");
        o.TensorBoardDir = dir.File("tb");
        var seen = new List<MaePretrainProgress>();
        using var source = MaeImageSource.FromArrays(TinyRun.Images(24), 3, 16, 16);
        using var model = MaePretrainer.CreateModel(TinyRun.Config, o);
        var r = new MaePretrainer(o).Train(model, source, new SyncProgress(seen.Add));

        Assert.AreEqual(12, r.StepLosses.Count);
        Assert.AreEqual(2, r.EpochLosses.Count);
        Assert.AreEqual(r.StepLosses.Take(6).Average(l => (double)l), r.EpochLosses[0], 1e-6);
        var lines = File.ReadAllLines(o.MetricsFile);
        Assert.AreEqual(12, lines.Length);
        for (int i = 0; i < 12; i++)
        {
            using var doc = JsonDocument.Parse(lines[i]);
            var root = doc.RootElement;
            Assert.AreEqual(i + 1, root.GetProperty("global_step").GetInt64());
            Assert.AreEqual(i / 6, root.GetProperty("epoch").GetInt32());
            Assert.AreEqual(i % 6, root.GetProperty("step").GetInt64());
            Assert.AreEqual(r.StepLosses[i], (float)root.GetProperty("loss").GetDouble());
            Assert.AreEqual(seen[i].LearningRate, root.GetProperty("lr").GetDouble());
            Assert.AreEqual((float)seen[i].Loss, r.StepLosses[i]);
            Assert.IsTrue(seen[i].ImagesPerSecond > 0);
        }
        Assert.AreEqual(TimeSpan.Zero, seen[^1].Eta);
        Assert.IsTrue(seen[0].Eta > TimeSpan.Zero);

        // TensorBoard: TFRecord framing (u64 length, u32 crc, Event proto, u32 crc); a file-version event, then
        // train_loss and lr per step, with the reference's x axis epoch×1000.
        var files = Directory.GetFiles(o.TensorBoardDir, "events.out.tfevents.*");
        Assert.AreEqual(1, files.Length);
        var records = ReadRecords(File.ReadAllBytes(files[0]));
        Assert.AreEqual(1 + 2 * 12, records.Count);
        StringAssert.Contains(Encoding.ASCII.GetString(records[0]), "brain.Event:2");
        for (int i = 0; i < 12; i++)
        {
            var (tag, value, step) = DecodeScalar(records[1 + 2 * i]);
            Assert.AreEqual("train_loss", tag);
            Assert.AreEqual(r.StepLosses[i], value);
            Assert.AreEqual((long)((i % 6 / 6.0 + i / 6) * 1000), step);
            Assert.AreEqual("lr", DecodeScalar(records[2 + 2 * i]).tag);
        }
    }

    internal static List<byte[]> ReadRecords(byte[] bytes)
    {
        var list = new List<byte[]>();
        int pos = 0;
        while (pos < bytes.Length)
        {
            long len = BitConverter.ToInt64(bytes, pos);
            list.Add(bytes.AsSpan(pos + 12, (int)len).ToArray());
            pos += 12 + (int)len + 4;
        }
        Assert.AreEqual(bytes.Length, pos);
        return list;
    }

    /// <summary>Event { step = 2 (varint), summary = 5 { value = 1 { tag = 1, simple_value = 2 (fixed32) } } }.</summary>
    internal static (string tag, float value, long step) DecodeScalar(byte[] ev)
    {
        long step = 0;
        string tag = "";
        float value = float.NaN;
        void Parse(ReadOnlySpan<byte> b, int depth)
        {
            int p = 0;
            while (p < b.Length)
            {
                ulong key = Varint(b, ref p);
                int field = (int)(key >> 3), wire = (int)(key & 7);
                switch (wire)
                {
                    case 0: { ulong v = Varint(b, ref p); if (depth == 0 && field == 2) step = (long)v; break; }
                    case 1: p += 8; break;
                    case 5: { if (depth == 2 && field == 2) value = BitConverter.ToSingle(b.Slice(p, 4)); p += 4; break; }
                    case 2:
                        {
                            int len = (int)Varint(b, ref p);
                            var inner = b.Slice(p, len);
                            if (depth == 2 && field == 1) tag = Encoding.UTF8.GetString(inner);
                            else if ((depth == 0 && field == 5) || (depth == 1 && field == 1)) Parse(inner, depth + 1);
                            p += len;
                            break;
                        }
                    default: throw new InvalidDataException($"wire type {wire}");
                }
            }
        }
        Parse(ev, 0);
        return (tag, value, step);
    }

    static ulong Varint(ReadOnlySpan<byte> b, ref int p)
    {
        ulong v = 0;
        for (int shift = 0; ; shift += 7)
        {
            byte x = b[p++];
            v |= (ulong)(x & 0x7F) << shift;
            if ((x & 0x80) == 0) return v;
        }
    }

    [TestMethod]
    [DataRow(MaePrecision.Fp32)]
    [DataRow(MaePrecision.Bf16)]
    public void LiveTensorCountStaysFlatOver240Steps(MaePrecision precision)
    {
        var o = TinyRun.Options(30);
        o.BatchSize = 2;
        o.Precision = precision;
        var atEpochEnd = new List<long>();
        using var source = MaeImageSource.FromArrays(TinyRun.Images(16), 3, 16, 16);
        using var model = MaePretrainer.CreateModel(TinyRun.Config, o);
        var stats = DisposeScopeManager.Statistics;
        var r = new MaePretrainer(o).Train(model, source, new SyncProgress(p =>
        {
            if (p.Step == p.StepsPerEpoch - 1) atEpochEnd.Add(stats.ThreadTotalLiveCount);
        }));
        Assert.AreEqual(240, r.GlobalSteps);
        Assert.AreEqual(30, atEpochEnd.Count);
        // From the end of epoch 1 on, every epoch ends with exactly as many live tensors.
        for (int e = 2; e < 30; e++) Assert.AreEqual(atEpochEnd[1], atEpochEnd[e], $"live tensors grew at epoch {e}: {string.Join(",", atEpochEnd)}");
    }

    [TestMethod]
    public void StreamingSourceServesEveryImageOncePerEpochInASeededOrder()
    {
        // Images tagged by their index in the first pixel.
        var images = Enumerable.Range(0, 10).Select(i => { var a = new float[3 * 16 * 16]; a[0] = i; return a; }).ToList();
        var source = new MaeStreamingImageSource(() => images, new MaeImageShape(3, 16, 16), count: 10, shuffleBufferSize: 16);
        List<float> Epoch(int epoch, long skip = 0)
        {
            var seen = new List<float>();
            foreach (var b in source.Batches(new MaeEpochPlan { Seed = 3, Epoch = epoch, BatchSize = 5, SkipBatches = skip }))
                using (b) for (int i = 0; i < 5; i++) seen.Add(b[i, 0, 0, 0].item<float>());
            return seen;
        }
        var first = Epoch(0);
        var second = Epoch(1);
        torch.random.manual_seed(99);   // libtorch's generator plays no part: the plan alone decides
        var again = Epoch(0);
        CollectionAssert.AreEquivalent(Enumerable.Range(0, 10).Select(i => (float)i).ToList(), first);
        CollectionAssert.AreEquivalent(first, second);
        CollectionAssert.AreNotEqual(first, second);
        CollectionAssert.AreEqual(first, again);
        CollectionAssert.AreEqual(first.Skip(5).ToList(), Epoch(0, skip: 1), "a resume inside the epoch reads what the whole epoch reads from there");

        // Training drops the incomplete last batch: 10 images in batches of 4 → 2 batches.
        Assert.AreEqual(2, source.Batches(new MaeEpochPlan { Seed = 3, BatchSize = 4 }).Select(t => { t.Dispose(); return 1; }).Count());
        // Evaluation keeps the stream order and the last batch: 4, 4, 2.
        var plain = source.Batches(new MaeEpochPlan { BatchSize = 4, Training = false }).ToList();
        CollectionAssert.AreEqual(new long[] { 4, 4, 2 }, plain.Select(t => t.shape[0]).ToArray());
        Assert.AreEqual(5f, plain[1][1, 0, 0, 0].item<float>());
        Assert.AreEqual(9f, plain[2][1, 0, 0, 0].item<float>());
        foreach (var t in plain) t.Dispose();
    }
}

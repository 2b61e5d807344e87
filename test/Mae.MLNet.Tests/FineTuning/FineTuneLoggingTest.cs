using System.Text.Json;
using Mae.MLNet.FineTuning;
using Mae.MLNet.Tests.Training;
using Mae.MLNet.TrainHost;

namespace Mae.MLNet.Tests.FineTuning;

[TestClass]
public class FineTuneLoggingTest
{
    [TestMethod]
    public void FineTuningWritesJsonlAndTensorBoardLikePretraining()
    {
        using var dir = new TempDir();
        using var train = TinyFt.Source(24);
        using var val = TinyFt.Source(12, seed: 99);
        using var model = MaeFineTuner.FromScratch(TinyFt.Config, 3, seed: 3);
        var o = TinyFt.Options(2);
        o.LogEvery = 1;
        o.MetricsFile = dir.File("ft.jsonl");
        o.TensorBoardDir = dir.File("tb");
        var r = new MaeFineTuner(o).Train(model, train, val);
        int steps = r.StepLosses.Count;
        Assert.AreEqual(2 * r.StepsPerEpoch, steps);

        var lines = File.ReadAllLines(o.MetricsFile);
        Assert.AreEqual(steps, lines.Length);
        for (int i = 0; i < steps; i++)
        {
            using var doc = JsonDocument.Parse(lines[i]);
            Assert.AreEqual(i + 1, doc.RootElement.GetProperty("global_step").GetInt64());
            Assert.AreEqual(r.StepLosses[i], (float)doc.RootElement.GetProperty("loss").GetDouble());
        }

        // The reference's engine_finetune.py: "loss" and "lr" per step on the epoch×1000 axis; main_finetune.py:
        // perf/test_acc1 (percent) and perf/test_loss per epoch.
        var records = Mae.MLNet.Tests.Pretraining.PretrainerTest.ReadRecords(File.ReadAllBytes(Directory.GetFiles(o.TensorBoardDir, "events.out.tfevents.*").Single()));
        var scalars = records.Skip(1).Select(Mae.MLNet.Tests.Pretraining.PretrainerTest.DecodeScalar).ToList();
        var losses = scalars.Where(s => s.tag == "loss").ToList();
        Assert.AreEqual(steps, losses.Count);
        for (int i = 0; i < steps; i++) Assert.AreEqual(r.StepLosses[i], losses[i].value);
        Assert.AreEqual(steps, scalars.Count(s => s.tag == "lr"));
        var acc = scalars.Where(s => s.tag == "perf/test_acc1").ToList();
        CollectionAssert.AreEqual(r.ValidationAccuracies.Select(a => (float)(a * 100)).ToArray(), acc.Select(s => s.value).ToArray());
        CollectionAssert.AreEqual(new long[] { 0, 1 }, acc.Select(s => s.step).ToArray());
        CollectionAssert.AreEqual(r.ValidationLosses.Select(l => (float)l).ToArray(), scalars.Where(s => s.tag == "perf/test_loss").Select(s => s.value).ToArray());
    }
}

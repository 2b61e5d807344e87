using Mae.MLNet.Evaluation;
using Mae.MLNet.FineTuning;
using Mae.MLNet.TrainHost;
using Mae.MLNet.Input;
using Mae.MLNet.Pretraining;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Evaluation;

[TestClass]
public class MaeKnnMonitorTest
{
    /// <summary>Two classes: images of TinyRun's generator, the second class brightened.</summary>
    static MaeLabeledImageSource Labelled(int count, int offset)
    {
        var images = TinyRun.Images(count + offset).Skip(offset).Select((a, i) => i % 2 == 0 ? a : a.Select(v => Math.Min(1f, v + 0.3f)).ToArray()).ToList();
        return MaeLabeledImageSource.FromArrays(images, Enumerable.Range(0, count).Select(i => (long)(i % 2)), new MaeImageShape(3, 16, 16));
    }

    [TestMethod]
    public void RunsAtTheChosenEpochsAndReportsWhatTheFinalModelGives()
    {
        using var train = Labelled(40, 0);
        using var test = Labelled(20, 40);
        var monitor = new MaeKnnMonitor(train, test, every: 2) { K = new[] { 1, 5 } };
        var augmentation = new MaeAugmentationOptions { OutputSize = 16, Channels = 3, ScaleMin = 0.5 };
        var o = TinyRun.Options(3);
        o.Transform = new MaePretrainAugmentation(augmentation);
        o.KnnMonitor = monitor;
        var reports = new List<MaePretrainProgress>();
        using var source = MaeImageSource.FromArrays(TinyRun.Images(24), 3, 16, 16);
        using var model = MaePretrainer.CreateModel(TinyRun.Config, o);
        var result = new MaePretrainer(o).Train(model, source, new SyncProgress(reports.Add));

        CollectionAssert.AreEqual(new[] { 1, 2 }, result.KnnResults.Select(r => r.Epoch).ToArray(), "after epoch 2 (every 2) and the last");
        Assert.AreEqual(2, reports.Count(r => r.EndOfEpoch && r.Knn is not null));
        var last = result.KnnResults[^1].Result;
        Assert.AreEqual(20, last.TestCount);
        var again = monitor.Evaluate(model.Encoder, MaeFineTuner.EvaluationTransform(augmentation), CPU);
        CollectionAssert.AreEqual(last.AccuracyByK.ToArray(), again.AccuracyByK.ToArray(), "the last report is the final model's kNN accuracy");
        Assert.IsTrue(last.AccuracyByK[1] >= 0.5, $"two brightness classes: 1-NN should beat chance; got {last}");
        Assert.IsTrue(model.training, "evaluation leaves the model in training mode");
    }

    [TestMethod]
    public void MismatchedSourcesAreRefused()
    {
        using var a = Labelled(4, 0);
        using var b = MaeLabeledImageSource.FromArrays(new[] { new float[3 * 8 * 8] }, new long[] { 0 }, new MaeImageShape(3, 8, 8));
        var e = Assert.ThrowsExactly<ArgumentException>(() => new MaeKnnMonitor(a, b));
        StringAssert.Contains(e.Message, "expected the same shape");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MaeKnnMonitor(a, a, every: 0));
    }

    sealed class SyncProgress(Action<MaePretrainProgress> report) : IProgress<MaePretrainProgress>
    {
        public void Report(MaePretrainProgress value) => report(value);
    }
}

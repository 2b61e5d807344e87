using Mae.MLNet.Model;
using Mae.MLNet.TrainHost;
using static TorchSharp.torch;

using Mae.MLNet.Tests.Model;
using Mae.MLNet.Input;
using Mae.MLNet.Pretraining;

namespace Mae.MLNet.Tests.Training;

/// <summary>Bad options and bad data fail with .NET exceptions that name the problem, before any training step.</summary>
[TestClass]
public class BadInputTest
{
    static void Throws<T>(Action<MaePretrainOptions> change, params string[] inMessage) where T : Exception
    {
        var o = TinyRun.Options(2);
        change(o);
        var e = Assert.ThrowsExactly<T>(() => o.Validate(TinyRun.Config));
        foreach (var s in inMessage) StringAssert.Contains(e.Message, s);
    }

    [TestMethod]
    public void InvalidOptionsAreRejected()
    {
        Throws<ArgumentOutOfRangeException>(o => o.LearningRate = 0, "LearningRate", "> 0", "got 0");
        Throws<ArgumentOutOfRangeException>(o => o.LearningRate = -1e-3, "LearningRate", "-0.001");
        Throws<ArgumentOutOfRangeException>(o => { o.LearningRate = null; o.BaseLearningRate = 0; }, "BaseLearningRate");
        Throws<ArgumentOutOfRangeException>(o => o.LearningRate = double.NaN, "LearningRate");
        Throws<ArgumentOutOfRangeException>(o => o.AccumIter = 0, "AccumIter", "at least 1", "got 0");
        Throws<ArgumentOutOfRangeException>(o => o.Epochs = 0, "Epochs", "at least 1", "got 0");
        Throws<ArgumentOutOfRangeException>(o => { o.Epochs = 5; o.WarmupEpochs = 6; }, "WarmupEpochs (6)", "Epochs (5)");
        Throws<ArgumentOutOfRangeException>(o => o.BatchSize = 0, "BatchSize", "got 0");
        Throws<ArgumentOutOfRangeException>(o => o.MaskRatio = 1.0, "MaskRatio", "(0, 1)");
        Throws<ArgumentOutOfRangeException>(o => o.MaskRatio = 0, "MaskRatio");
        Throws<ArgumentOutOfRangeException>(o => o.MinLearningRate = 2e-3, "MinLearningRate", "peak lr = 0.001");
        Throws<ArgumentOutOfRangeException>(o => o.Beta2 = 1, "Beta2");
        Throws<ArgumentOutOfRangeException>(o => o.WeightDecay = -0.1, "WeightDecay");
        Throws<ArgumentOutOfRangeException>(o => o.CheckpointEvery = 0, "CheckpointEvery");
        Throws<ArgumentOutOfRangeException>(o => o.Threads = 0, "Threads");
        Throws<ArgumentException>(o => { o.CheckpointDir = null; o.Resume = true; }, "Resume", "CheckpointDir");
        // The tiny model has L = 16 patches: 0.97 keeps floor(16·0.03) = 0, 1e-17 removes none.
        Throws<ArgumentOutOfRangeException>(o => o.MaskRatio = 0.97, "keeps no patch", "16", "0.9375");
        Throws<ArgumentOutOfRangeException>(o => o.MaskRatio = 1e-17, "removes no patch");
        // The trainer validates in its constructor too.
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MaePretrainer(new MaePretrainOptions { Epochs = 0 }));
    }

    [TestMethod]
    public void EmptyOrMixedDataIsRejected()
    {
        var e1 = Assert.ThrowsExactly<ArgumentException>(() => MaeImageSource.FromArrays(new List<float[]>(), 3, 16, 16));
        StringAssert.Contains(e1.Message, "empty");
        using (var none = zeros(0, 3, 16, 16))
            StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => MaeImageSource.FromTensor(none)).Message, "N = 0");

        var arrays = TinyRun.Images(4);
        arrays[2] = new float[3 * 8 * 8];
        var e2 = Assert.ThrowsExactly<ArgumentException>(() => MaeImageSource.FromArrays(arrays, 3, 16, 16));
        StringAssert.Contains(e2.Message, "Mixed image sizes: image 2 has 192 values");
        StringAssert.Contains(e2.Message, "768");

        using var a = zeros(3, 16, 16);
        using var b = zeros(3, 16, 12);
        var e3 = Assert.ThrowsExactly<ArgumentException>(() => MaeImageSource.FromTensors(new[] { a, a, b }));
        StringAssert.Contains(e3.Message, "images[2] is [3, 16, 12] but images[0] is [3, 16, 16]");

        var bad = TinyRun.Images(2);
        bad[1][5] = float.NaN;
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => MaeImageSource.FromArrays(bad, 3, 16, 16)).Message, "image 1 has a non-finite value");
    }

    [TestMethod]
    public void DataThatDoesNotFitTheModelFailsBeforeTraining()
    {
        var options = TinyRun.Options(1);
        var trainer = new MaePretrainer(options);
        using var model = new MaskedAutoencoder(TinyRun.Config);
        using var before = model.decoder_pred.weight!.clone();

        using (var small = MaeImageSource.FromArrays(TinyRun.Images(8, size: 8), 3, 8, 8))
        {
            var e = Assert.ThrowsExactly<ArgumentException>(() => trainer.Train(model, small));
            StringAssert.Contains(e.Message, "3×16×16");
            StringAssert.Contains(e.Message, "3×8×8");
        }
        using (var grey = MaeImageSource.FromArrays(TinyRun.Images(8, channels: 1), 1, 16, 16))
            StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => trainer.Train(model, grey)).Message, "1×16×16");
        using (var three = MaeImageSource.FromArrays(TinyRun.Images(3), 3, 16, 16))
            StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => trainer.Train(model, three)).Message, "3 images, fewer than BatchSize = 4");
        options.AccumIter = 3;
        using (var eight = MaeImageSource.FromArrays(TinyRun.Images(8), 3, 16, 16))
            StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => new MaePretrainer(options).Train(model, eight)).Message, "AccumIter = 3");

        var after = model.decoder_pred.weight!;
        Assert.IsTrue(TensorAssert.Same(before, after), "no step may run before the checks");
    }

    [TestMethod]
    public void StreamThatEndsEarlyIsReported()
    {
        var images = TinyRun.Images(6);
        var source = new MaeStreamingImageSource(() => images, new MaeImageShape(3, 16, 16), count: 10);
        using var model = MaePretrainer.CreateModel(TinyRun.Config, TinyRun.Options(1));
        var e = Assert.ThrowsExactly<InvalidDataException>(() => new MaePretrainer(TinyRun.Options(1)).Train(model, source));
        StringAssert.Contains(e.Message, "ended after 6 images");
        StringAssert.Contains(e.Message, "Count = 10");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MaeStreamingImageSource(() => images, new MaeImageShape(3, 16, 16), count: 0));
    }
}

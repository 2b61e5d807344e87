using Mae.MLNet.FineTuning;
using Mae.MLNet.Model;
using Mae.MLNet.Input;
using static TorchSharp.torch;

namespace Mae.MLNet.Evaluation;

/// <summary>
/// The usual progress signal of self-supervised pre-training: every <see cref="Every"/> epochs the encoder (eval
/// mode, all patches visible) featurizes held-out labelled images and <see cref="MaeKnnProbe"/> classifies the test
/// images against the train images. Set it as <see cref="Pretraining.MaePretrainOptions.KnnMonitor"/>; results arrive in the
/// end-of-epoch progress report, TensorBoard (<c>knn/top1_k{k}</c>) and <see cref="Pretraining.MaePretrainResult.KnnResults"/>.
/// </summary>
public sealed class MaeKnnMonitor
{
    /// <param name="train">Labelled images the test images are compared with (e.g. a few thousand training images).</param>
    /// <param name="test">Held-out labelled images to classify.</param>
    /// <param name="every">Run after every this many epochs (and after the last).</param>
    public MaeKnnMonitor(IMaeLabeledImageSource train, IMaeLabeledImageSource test, int every = 1)
    {
        Train = train ?? throw new ArgumentNullException(nameof(train));
        Test = test ?? throw new ArgumentNullException(nameof(test));
        if (every < 1) throw new ArgumentOutOfRangeException(nameof(every), every, "The kNN monitor runs every n ≥ 1 epochs.");
        if (train.Shape != test.Shape)
            throw new ArgumentException($"The train images are {train.Shape} and the test images {test.Shape}; expected the same shape.", nameof(test));
        Every = every;
    }

    public IMaeLabeledImageSource Train { get; }
    public IMaeLabeledImageSource Test { get; }
    public int Every { get; }
    public IReadOnlyList<int> K { get; init; } = MaeKnnProbe.DefaultK;
    public double Temperature { get; init; } = MaeKnnProbe.DefaultTemperature;
    public MaePooling Pooling { get; init; } = MaePooling.Mean;
    public int BatchSize { get; init; } = 256;

    /// <summary>Whether it runs after <paramref name="epoch"/> (0-based) of <paramref name="epochs"/>.</summary>
    public bool RunsAfter(int epoch, int epochs) => (epoch + 1) % Every == 0 || epoch + 1 == epochs;

    /// <summary>kNN accuracy of <paramref name="encoder"/>'s features; <paramref name="transform"/> maps the sources'
    /// [0, 1] pixels to model input (the file sources give model input themselves).</summary>
    public MaeKnnProbe.Result Evaluate(MaeEncoder encoder, IBatchTransform? transform, Device device)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        bool wasTraining = encoder.training;
        encoder.eval();
        try
        {
            using var scope = NewDisposeScope();
            var (trainX, trainY) = Features(encoder, Train, transform, device);
            var (testX, testY) = Features(encoder, Test, transform, device);
            return MaeKnnProbe.Evaluate(trainX, trainY, testX, testY, K, Temperature);
        }
        finally { if (wasTraining) encoder.train(); }
    }

    (Tensor Features, long[] Labels) Features(MaeEncoder encoder, IMaeLabeledImageSource source, IBatchTransform? transform, Device device)
    {
        var features = new List<Tensor>();
        var labels = new List<long>();
        MaeFineTuner.ForEachEvaluationBatch(source, transform, BatchSize, device, (x, y) =>
        {
            features.Add(encoder.ExtractFeatures(x, Pooling).MoveToOuterDisposeScope());
            labels.AddRange(y.cpu().data<long>().ToArray());
        });
        return (cat(features, 0), labels.ToArray());
    }
}

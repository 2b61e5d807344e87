using Mae.MLNet.Model;
using static TorchSharp.torch;

namespace Mae.MLNet.Evaluation;

public static partial class MaeKnnProbe
{
    /// <summary>Accuracy of a weighted k-nearest-neighbour classifier on frozen features, one entry per k.</summary>
    public sealed record Result(IReadOnlyDictionary<int, double> AccuracyByK, long TestCount, double Temperature)
    {
        public override string ToString()
            => string.Join(", ", AccuracyByK.OrderBy(kv => kv.Key).Select(kv => $"k={kv.Key}: {kv.Value:P2}")) + $" ({TestCount} images)";
    }
}

/// <summary>
/// The usual self-supervised kNN evaluation (Wu et al. 2018, as DINO's <c>knn_classifier</c>): features are
/// L2-normalised, each test image takes the <c>k</c> training images of highest cosine similarity <c>s</c>, each
/// neighbour votes for its label with weight <c>exp(s / T)</c>, and the class with the largest total wins.
/// No training, no hyper-parameters but <c>k</c> and <c>T</c>: a cheap signal of feature quality during pre-training.
/// </summary>
public static partial class MaeKnnProbe
{
    /// <summary>DINO's defaults: k = 20 and 200, T = 0.07.</summary>
    public static readonly IReadOnlyList<int> DefaultK = new[] { 20, 200 };
    public const double DefaultTemperature = 0.07;

    /// <summary>
    /// Classifies <paramref name="testFeatures"/> [M, D] against <paramref name="trainFeatures"/> [N, D] with labels
    /// 0 … C − 1, for every k in <paramref name="ks"/> (a k larger than N uses all N). Test rows go in chunks of
    /// <paramref name="chunkSize"/> so memory stays at chunk × N similarities. Runs on the features' device.
    /// </summary>
    public static MaeKnnProbe.Result Evaluate(Tensor trainFeatures, IReadOnlyList<long> trainLabels, Tensor testFeatures,
        IReadOnlyList<long> testLabels, IReadOnlyList<int>? ks = null, double temperature = DefaultTemperature, int chunkSize = 256)
    {
        ks ??= DefaultK;
        Check(trainFeatures, trainLabels, "train");
        Check(testFeatures, testLabels, "test");
        if (trainFeatures.shape[1] != testFeatures.shape[1])
            throw new ArgumentException(
                $"The train features have {trainFeatures.shape[1]} dimensions, the test features {testFeatures.shape[1]}; expected the same.", nameof(testFeatures));
        if (ks.Count == 0 || ks.Any(k => k < 1)) throw new ArgumentException($"Every k must be ≥ 1; got [{string.Join(", ", ks)}].", nameof(ks));
        if (!(temperature > 0 && double.IsFinite(temperature)))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "The temperature must be a finite number > 0.");
        if (chunkSize < 1) throw new ArgumentOutOfRangeException(nameof(chunkSize), chunkSize, "The chunk size must be ≥ 1.");

        long n = trainFeatures.shape[0], m = testFeatures.shape[0];
        int classes = (int)Math.Max(trainLabels.Max(), testLabels.Max()) + 1;
        int kMax = (int)Math.Min(ks.Max(), n);
        var correct = new long[ks.Count];
        var device = trainFeatures.device;

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var train = nn.functional.normalize(trainFeatures.to(float32), dim: 1);
        var trainY = tensor(trainLabels.ToArray(), dtype: int64, device: device);
        for (long start = 0; start < m; start += chunkSize)
        {
            using var chunkScope = NewDisposeScope();
            long len = Math.Min(chunkSize, m - start);
            var test = nn.functional.normalize(testFeatures[TensorIndex.Slice(start, start + len)].to(float32).to(device), dim: 1);
            var (sims, idx) = test.matmul(train.t()).topk(kMax, dim: 1, largest: true, sorted: true);   // [len, kMax]
            var neighbourLabels = trainY[idx];                                                            // [len, kMax]
            var weights = sims.DividedBy(temperature).exp_();
            var truth = testLabels.Skip((int)start).Take((int)len).ToArray();
            for (int i = 0; i < ks.Count; i++)
            {
                int k = Math.Min(ks[i], kMax);
                var votes = zeros(len, classes, device: device)
                    .scatter_add_(1, neighbourLabels[.., ..k], weights[.., ..k]);                         // [len, C]
                var predicted = votes.argmax(1).cpu().data<long>().ToArray();
                for (int r = 0; r < len; r++) if (predicted[r] == truth[r]) correct[i]++;
            }
        }
        var byK = new SortedDictionary<int, double>();
        for (int i = 0; i < ks.Count; i++) byK[ks[i]] = (double)correct[i] / m;
        return new MaeKnnProbe.Result(byK, m, temperature);
    }

    static void Check(Tensor features, IReadOnlyList<long> labels, string name)
    {
        ArgumentNullException.ThrowIfNull(features, name + "Features");
        ArgumentNullException.ThrowIfNull(labels, name + "Labels");
        if (features.dim() != 2 || !features.is_floating_point())
            throw new ArgumentException($"The {name} features must be a float matrix [N, D]; got [{string.Join(", ", features.shape)}] ({features.dtype}).", name + "Features");
        if (features.shape[0] < 1) throw new ArgumentException($"The {name} features are empty; expected at least one row.", name + "Features");
        if (labels.Count != features.shape[0])
            throw new ArgumentException($"There are {features.shape[0]} {name} feature rows but {labels.Count} labels; expected one label per row.", name + "Labels");
        for (int i = 0; i < labels.Count; i++)
            if (labels[i] < 0 || labels[i] > int.MaxValue - 1)
                throw new ArgumentOutOfRangeException(name + "Labels", labels[i], $"{name} label {i} is {labels[i]}; labels must be class indices ≥ 0.");
        if (!features.isfinite().all().item<bool>())
            throw new ArgumentException($"The {name} features contain NaN or infinite values.", name + "Features");
    }
}

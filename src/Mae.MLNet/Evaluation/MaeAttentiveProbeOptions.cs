using Mae.MLNet.Runtime;
using Mae.MLNet.Model;

namespace Mae.MLNet.Evaluation;

/// <summary>
/// The attentive probe's recipe (<see cref="MaeAttentiveProber"/>): AdamW (0.9 / 0.999), weight decay 0.05 except
/// biases, norms and the query, lr 1e-3 with one epoch of linear warm-up then half-cycle cosine, plain cross entropy,
/// no augmentation by default (the frozen encoder's tokens are computed once, see <see cref="MaeAttentiveProber"/>;
/// <see cref="HorizontalFlip"/> caches a mirrored view as well). The lr is a
/// conservative default: on Fashion-MNIST's small encoder 1e-2 learned far faster (docs/results.md).
/// </summary>
public sealed class MaeAttentiveProbeOptions
{
    public int Epochs { get; set; } = 20;
    /// <summary>Images per step; the incomplete last batch of an epoch is dropped.</summary>
    public int BatchSize { get; set; } = 256;
    /// <summary>Peak (absolute) learning rate.</summary>
    public double LearningRate { get; set; } = 1e-3;
    public double MinLearningRate { get; set; } = 1e-6;
    /// <summary>Epochs of linear warm-up (may be fractional).</summary>
    public double WarmupEpochs { get; set; } = 1;
    public double WeightDecay { get; set; } = 0.05;
    public double LabelSmoothing { get; set; }
    /// <summary>Attention heads of the pooler (null: the encoder's head count); must divide the token width
    /// (<see cref="Layers"/> × the encoder's width).</summary>
    public int? NumHeads { get; set; }
    /// <summary>How many of the encoder's last blocks the probe reads (1 … depth): each block's patch tokens after the
    /// final norm, concatenated per patch (<see cref="Model.MaeEncoder.PatchTokens"/>), so the pooler attends over
    /// tokens of width <c>Layers × D</c>, as the multi-layer linear probe (<c>MaeFeaturizerOptions.Layers</c>) does with
    /// pooled vectors. 1 (default): the last block only.</summary>
    public int Layers { get; set; } = 1;
    /// <summary>The pooler's MLP after its attention, in hidden units per token channel (<see cref="Model.AttentivePooler.MlpRatio"/>):
    /// 0 (default) attention only, as AIM's pooler; 4 the complete cross-attention block of V-JEPA's probe. Measured on
    /// CIFAR-10 with nano32 (docs/results.md): 4 scored 2.7 points above 0 on the 50 000 training photos and 1.6 / 3.1
    /// points below it on 10 000 / 3 000 (it overfits small sets), so the default stays 0 and the quickstart chooses
    /// between the two on held-out rows.</summary>
    public double MlpRatio { get; set; }
    /// <summary>Also cache the tokens of each training image's mirror image (a horizontal flip, computed once as the
    /// others are) and show every image once per epoch, mirrored with probability ½: <c>RandomHorizontalFlip</c> for a
    /// probe on cached tokens, at twice the training cache and its computing time (the steps cost the same). Validation
    /// and scoring read the images as they are. Default false. On CIFAR-10 with nano32 (docs/results.md) it lifted the pooler
    /// with its MLP by 1.2 points on 50 000 photos (the last 2 blocks: 73.8 against 72.6 %) and 1.9 on 3 000, and left
    /// the attention-only pooler unchanged.</summary>
    public bool HorizontalFlip { get; set; }
    /// <summary>Seed of the pooler's initialisation, of the per-epoch order and of the flips.</summary>
    public long Seed { get; set; }
    public MaeDevice Device { get; set; } = MaeDevice.Auto;
    /// <summary>Report every n steps.</summary>
    public int LogEvery { get; set; } = 50;
    /// <summary>Rows per frozen-encoder forward pass when the tokens are computed, and per validation batch.</summary>
    public int EvaluationBatchSize { get; set; } = 256;
    /// <summary>Upper bound of the cached tokens (images × patches × width × 4 bytes, training and validation
    /// together); checked before the encoder runs. Default 4 GiB.</summary>
    public long MaxTokenCacheBytes { get; set; } = 4L << 30;

    public MaeAttentiveProbeOptions Clone() => (MaeAttentiveProbeOptions)MemberwiseClone();

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first setting out of range.</summary>
    public MaeAttentiveProbeOptions Validate()
    {
        static void Check(bool ok, string name, object value, string expected)
        {
            if (!ok) throw new ArgumentOutOfRangeException(name, value, $"{name} must be {expected}; got {value}.");
        }
        Check(Epochs >= 1, nameof(Epochs), Epochs, "≥ 1");
        Check(BatchSize >= 1, nameof(BatchSize), BatchSize, "≥ 1");
        Check(LearningRate > 0 && double.IsFinite(LearningRate), nameof(LearningRate), LearningRate, "a finite number > 0");
        Check(MinLearningRate >= 0 && MinLearningRate <= LearningRate, nameof(MinLearningRate), MinLearningRate, $"in [0, LearningRate = {LearningRate}]");
        Check(WarmupEpochs >= 0 && WarmupEpochs <= Epochs, nameof(WarmupEpochs), WarmupEpochs, $"in [0, Epochs = {Epochs}]");
        Check(WeightDecay >= 0 && double.IsFinite(WeightDecay), nameof(WeightDecay), WeightDecay, "a finite number ≥ 0");
        Check(LabelSmoothing >= 0 && LabelSmoothing < 1, nameof(LabelSmoothing), LabelSmoothing, "in [0, 1)");
        Check(NumHeads is null || NumHeads >= 1, nameof(NumHeads), NumHeads!, "≥ 1 (or null for the encoder's)");
        Check(Layers >= 1, nameof(Layers), Layers, "≥ 1 (the last block), at most the encoder's depth");
        Check(MlpRatio >= 0 && double.IsFinite(MlpRatio), nameof(MlpRatio), MlpRatio, "0 (no MLP) or a finite number > 0");
        Check(LogEvery >= 1, nameof(LogEvery), LogEvery, "≥ 1");
        MaeInputs.CheckInferenceBatchSize(EvaluationBatchSize, nameof(EvaluationBatchSize));
        Check(MaxTokenCacheBytes >= 1, nameof(MaxTokenCacheBytes), MaxTokenCacheBytes, "≥ 1");
        if (!Enum.IsDefined(Device)) throw new ArgumentOutOfRangeException(nameof(Device), Device, "Expected Auto, Cpu or Cuda.");
        return this;
    }
}

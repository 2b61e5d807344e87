using Mae.MLNet.FineTuning;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Training;
using TorchSharp;
using Mae.MLNet.Input;
using static TorchSharp.torch;

namespace Mae.MLNet.Evaluation;

public sealed partial class MaeAttentiveProber
{
    /// <summary>What an attentive-probe run produced: the trained pooler + head, the run's losses and validation
    /// accuracies (fine-tuning's result record: the same engine made them), and the time spent computing the tokens.</summary>
    public sealed record Result(AttentiveClassifier Model, MaeFineTuneResult Training, TimeSpan TokenCaching);
}

/// <summary>
/// Trains an attentive probe (<see cref="AttentiveClassifier"/>: <see cref="AttentivePooler"/> + linear head) on the
/// patch tokens of a frozen encoder. The encoder runs once per image, in eval mode under no_grad with every patch
/// visible, and its patch tokens (after the final norm, cls left out) are kept on the CPU: the probe then trains for
/// many epochs at the cost of the pooler alone. This is the standard protocol of frozen-feature probes (the
/// evaluation transform, no augmentation); it means the probe never sees augmented images, and memory grows as
/// images × patches × width (bounded by <see cref="MaeAttentiveProbeOptions.MaxTokenCacheBytes"/>, checked first).
/// Training runs on the shared engine (<see cref="MaeTrainingEngine"/>: AdamW over one flat buffer, warm-up + cosine,
/// non-finite check, progress) with fine-tuning's progress and result records; no checkpoints (a probe on cached
/// tokens retrains in minutes).
/// </summary>
public sealed partial class MaeAttentiveProber
{
    public MaeAttentiveProbeOptions Options { get; }

    public MaeAttentiveProber(MaeAttentiveProbeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options.Clone().Validate();
    }

    /// <summary>
    /// Trains a new probe on <paramref name="encoder"/>'s tokens of <paramref name="train"/> ([0, 1] pixels, normalised
    /// with <paramref name="normalization"/>'s Mean/Std; a file source normalises itself). The encoder is not
    /// changed (it is moved to the training device; it runs in eval mode and its mode is restored afterwards). <paramref name="numClasses"/> defaults to
    /// the largest label + 1. Data and options are checked first.
    /// </summary>
    public MaeAttentiveProber.Result Train(MaeEncoder encoder, IMaeLabeledImageSource train, IMaeLabeledImageSource? validation = null,
        PixelNormalization? normalization = null, IProgress<MaeFineTuneProgress>? progress = null, int? numClasses = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(train);
        var o = Options;
        var cfg = encoder.Config;
        MaeEncoder.CheckLayers(o.Layers, cfg, nameof(o.Layers));
        int width = o.Layers * cfg.EmbedDim, heads = o.NumHeads ?? cfg.NumHeads;
        if (width % heads != 0)
            throw new ArgumentOutOfRangeException(nameof(o.NumHeads), heads, $"NumHeads must divide the token width {width} ({o.Layers} layer(s) × {cfg.EmbedDim}); got {heads}.");
        AttentivePooler.CheckMlpRatio(o.MlpRatio, width, nameof(o.MlpRatio));
        var evalTransform = TokenTransform(cfg, normalization);
        int classes = CheckData(cfg, train, validation, o, numClasses);

        var device = o.Device.Resolve();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var trainTokens = TokenCache.Compute(encoder, o.Layers, train, evalTransform, o.EvaluationBatchSize, device, o.HorizontalFlip);
        using var validationTokens = validation is null ? null : TokenCache.Compute(encoder, o.Layers, validation, evalTransform, o.EvaluationBatchSize, device, mirrored: false);
        var caching = clock.Elapsed;

        TorchRuntime.Seed(o.Seed);
        var model = new AttentiveClassifier(width, heads, classes, cfg.LayerNormEps, o.MlpRatio);
        var task = new ProbeTask(model, trainTokens, validationTokens, o, progress);
        long stepsPerEpoch = train.Count / o.BatchSize;
        var settings = new MaeEngineSettings
        {
            BatchSize = o.BatchSize, AccumIter = 1, Epochs = o.Epochs, PeakLearningRate = o.LearningRate, MinLearningRate = o.MinLearningRate,
            WarmupEpochs = o.WarmupEpochs, Beta1 = 0.9, Beta2 = 0.999, Epsilon = 1e-8, Seed = o.Seed, LogEvery = o.LogEvery, CheckpointEvery = 1,
        };
        var state = MaeTrainingEngine.Run(task, settings, stepsPerEpoch, device, cancellationToken);
        model.eval();
        var result = MaeTrainingResult.From<MaeFineTuneResult>(state, stepsPerEpoch, o.LearningRate) with
        {
            ValidationAccuracies = task.ValidationAccuracies, ValidationLosses = task.ValidationLosses,
        };
        return new MaeAttentiveProber.Result(model, result, caching);
    }

    /// <summary>What the encoder's tokens are computed from, in training and evaluation alike: the evaluation transform
    /// (no crop, no flip) normalising [0, 1] pixels with <paramref name="normalization"/>'s Mean/Std.</summary>
    internal static MaePretrainAugmentation TokenTransform(MaeConfig cfg, PixelNormalization? normalization)
    {
        var norm = (normalization ?? PixelNormalization.Default(cfg.InChannels)).Validate(cfg.InChannels);
        return MaeFineTuner.EvaluationTransform(new MaeAugmentationOptions
        {
            OutputSize = cfg.ImageSize, Channels = cfg.InChannels, Normalization = norm with { Scale = 1f },
        });
    }

    /// <summary>Top-1 accuracy and mean cross entropy of <paramref name="model"/> on <paramref name="encoder"/>'s tokens of
    /// <paramref name="source"/> (eval mode, no_grad).</summary>
    public static (double Accuracy, double Loss) Evaluate(MaeEncoder encoder, AttentiveClassifier model, IMaeLabeledImageSource source,
        PixelNormalization? normalization = null, int batchSize = 256)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(source);
        var transform = TokenTransform(encoder.Config, normalization);
        int layers = LayersOf(encoder, model);
        var device = model.head.weight!.device;
        bool wasTraining = encoder.training;
        encoder.eval();
        model.eval();
        long correct = 0, seen = 0;
        double lossSum = 0;
        try
        {
            MaeFineTuner.ForEachEvaluationBatch(source, transform, batchSize, device, (x, y) =>
            {
                var logits = model.forward(PatchTokens(encoder, x, layers));
                lossSum += nn.functional.cross_entropy(logits, y, reduction: nn.Reduction.Sum).item<float>();
                correct += logits.argmax(-1).eq(y).sum().item<long>();
                seen += y.shape[0];
            });
        }
        finally { if (wasTraining) encoder.train(); }
        return (seen == 0 ? 0 : (double)correct / seen, seen == 0 ? 0 : lossSum / seen);
    }

    /// <summary>The probe's input: the encoder's patch tokens of its last <paramref name="layers"/> blocks after the final
    /// norm, every patch visible, cls left out (<see cref="MaeEncoder.PatchTokens"/>): [N, L, layers · D] fp32.</summary>
    internal static Tensor PatchTokens(MaeEncoder encoder, Tensor images, int layers)
    {
        using var scope = NewDisposeScope();
        return encoder.PatchTokens(images, layers).to(float32).MoveToOuterDisposeScope();
    }

    /// <summary>How many of <paramref name="encoder"/>'s last blocks <paramref name="probe"/> reads: its token width is
    /// that many times the encoder's. Throws when the two do not fit together.</summary>
    public static int LayersOf(MaeEncoder encoder, AttentiveClassifier probe)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(probe);
        return AttentivePooler.LayersOf(encoder.Config, probe.EmbedDim, nameof(probe));
    }

    static int CheckData(MaeConfig cfg, IMaeLabeledImageSource train, IMaeLabeledImageSource? validation, MaeAttentiveProbeOptions o, int? numClasses)
    {
        var expected = new MaeImageShape(cfg.InChannels, cfg.ImageSize, cfg.ImageSize);
        void CheckSource(IMaeLabeledImageSource s, string name)
        {
            if (s.Count < 1) throw new ArgumentException($"The {name} source is empty (Count = {s.Count}): the attentive probe needs labelled images.", name);
            if (s.Shape != expected)
                throw new ArgumentException($"The encoder expects images of {expected} but the {name} source holds {s.Shape}.", name);
        }
        CheckSource(train, "train");
        if (validation is not null) CheckSource(validation, "validation");
        if (train.Count < o.BatchSize)
            throw new ArgumentException(
                $"The training source has {train.Count} images, fewer than BatchSize = {o.BatchSize}; incomplete batches are dropped, so an epoch would have no step. Lower BatchSize or add images.", nameof(train));
        int bound = Math.Max(train.LabelBound, validation?.LabelBound ?? 0);
        int classes = numClasses ?? bound;
        if (classes < 2) throw new ArgumentException($"The labels span {classes} class(es); a classifier needs at least 2.", nameof(numClasses));
        if (bound > classes)
            throw new ArgumentException($"The sources have labels up to {bound - 1}; the probe has {classes} classes (labels 0 … {classes - 1}).", nameof(numClasses));
        long views = checked(train.Count * (o.HorizontalFlip ? 2 : 1) + (validation?.Count ?? 0));
        long bytes = checked(views * cfg.NumPatches * o.Layers * cfg.EmbedDim * sizeof(float));
        if (bytes > o.MaxTokenCacheBytes)
            throw new ArgumentException(
                $"Caching the frozen tokens needs {bytes / (1 << 20)} MiB ({views} images{(o.HorizontalFlip ? ", the training images twice: as they are and mirrored" : "")} × {cfg.NumPatches} patches × {o.Layers * cfg.EmbedDim} floats), " +
                $"more than MaxTokenCacheBytes = {o.MaxTokenCacheBytes / (1 << 20)} MiB. Raise the bound if the memory is there, or probe a subset.", nameof(train));
        return classes;
    }

    /// <summary>The rows of a mirrored cache (<see cref="TokenCache.Mirrored"/>, <paramref name="count"/> images) that
    /// <paramref name="rows"/>' images are read from in <paramref name="epoch"/>: each image's own row, or its mirror
    /// image's (row + count) with probability ½, drawn from (seed, epoch, image) so that a run repeats.</summary>
    internal static long[] Views(long[] rows, long count, long seed, int epoch)
    {
        var views = new long[rows.Length];
        Span<double> u = stackalloc double[1];
        for (int i = 0; i < rows.Length; i++)
        {
            MaePlanRandom.Uniforms(seed, epoch, rows[i], u);
            views[i] = u[0] < 0.5 ? rows[i] + count : rows[i];
        }
        return views;
    }

    /// <summary>A frozen encoder's patch tokens and labels [N] of a whole source, on the CPU: tokens [N, L, layers · D],
    /// or [2N, L, layers · D] when <see cref="Mirrored"/> (rows N … 2N − 1 are the horizontally flipped images', in the same order).</summary>
    internal sealed class TokenCache : IDisposable
    {
        public Tensor Tokens { get; }
        public Tensor Labels { get; }
        public long Count => Labels.shape[0];
        public bool Mirrored => Tokens.shape[0] == 2 * Count;

        TokenCache(Tensor tokens, Tensor labels) { Tokens = tokens; Labels = labels; }

        public static TokenCache Compute(MaeEncoder encoder, int layers, IMaeLabeledImageSource source, IBatchTransform transform, int batchSize, Device device,
            bool mirrored)
        {
            var cfg = encoder.Config;
            bool wasTraining = encoder.training;
            encoder.to(device);
            encoder.eval();
            var tokens = empty(source.Count * (mirrored ? 2 : 1), cfg.NumPatches, layers * cfg.EmbedDim, dtype: float32);
            var labels = empty(source.Count, dtype: int64);
            tokens.DetachFromDisposeScope();
            labels.DetachFromDisposeScope();
            long row = 0;
            try
            {
                MaeFineTuner.ForEachEvaluationBatch(source, transform, batchSize, device, (x, y) =>
                {
                    long n = y.shape[0];
                    if (row + n > source.Count)
                        throw new InvalidDataException($"The source yielded more than the {source.Count} images it promises.");
                    tokens[TensorIndex.Slice(row, row + n)].copy_(PatchTokens(encoder, x, layers).cpu());
                    if (mirrored)
                    {
                        using var flipped = x.flip(3);
                        tokens[TensorIndex.Slice(source.Count + row, source.Count + row + n)].copy_(PatchTokens(encoder, flipped, layers).cpu());
                    }
                    labels[TensorIndex.Slice(row, row + n)].copy_(y.cpu());
                    row += n;
                });
                if (row != source.Count) throw new InvalidDataException($"The source yielded {row} images; it promises {source.Count}.");
            }
            catch
            {
                tokens.Dispose();
                labels.Dispose();
                throw;
            }
            finally { if (wasTraining) encoder.train(); }
            return new TokenCache(tokens, labels);
        }

        public void Dispose()
        {
            Tokens.Dispose();
            Labels.Dispose();
        }
    }

    /// <summary>The probe's hooks for the engine: batches of cached tokens in a (seed, epoch) order (each image's mirrored
    /// view with probability ½ when the cache holds one), cross entropy,
    /// weight decay on the matrices only, validation accuracy after each epoch.</summary>
    sealed class ProbeTask(AttentiveClassifier model, TokenCache train, TokenCache? validation, MaeAttentiveProbeOptions o,
        IProgress<MaeFineTuneProgress>? progress) : MaeTrainingTask<(Tensor Tokens, Tensor Labels)>
    {
        public List<double> ValidationAccuracies { get; } = new();
        public List<double> ValidationLosses { get; } = new();

        public override nn.Module Model => model;
        public override string DataDescription => $"token cache ({train.Count} images)";
        public override string LossTag => "loss";
        // Never written: the probe runs without CheckpointDir (see the class summary); the engine only reads it then.
        public override MaeTrainingCheckpoint Checkpoint => MaeFineTuneCheckpoint.Training;

        public override void PrepareModel(ScalarType? computeDType) { }

        public override IReadOnlyList<MaeParamGroup> ParamGroups()
        {
            var (decay, noDecay, _) = MaeWeightDecay.Split(model, model.NoWeightDecay());
            return new[] { new MaeParamGroup("decay", 1.0, o.WeightDecay, decay), new MaeParamGroup("no_decay", 1.0, 0.0, noDecay) };
        }

        public override IEnumerable<(Tensor Tokens, Tensor Labels)> Batches(int epoch, Device device, long skipBatches)
        {
            var order = MaePlanRandom.Permutation(train.Count, o.Seed, epoch);
            long batches = train.Count / o.BatchSize;
            for (long b = skipBatches; b < batches; b++)
            {
                var rows = order.AsSpan((int)(b * o.BatchSize), o.BatchSize).ToArray();
                using var idx = tensor(rows, dtype: int64);
                using var viewIdx = train.Mirrored ? tensor(Views(rows, train.Count, o.Seed, epoch), dtype: int64) : null;
                var x = train.Tokens.index_select(0, viewIdx ?? idx);
                var y = train.Labels.index_select(0, idx);
                yield return (x, y);
            }
        }

        public override Tensor Loss((Tensor Tokens, Tensor Labels) batch, Device device)
            => MaeClassificationLoss.LabelSmoothingCrossEntropy(model.forward(batch.Tokens.to(device)), batch.Labels.to(device), o.LabelSmoothing);

        public override void Release((Tensor Tokens, Tensor Labels) batch)
        {
            batch.Tokens.Dispose();
            batch.Labels.Dispose();
        }

        public override void Report(MaeStepReport r)
        {
            if (progress is not null && r.GlobalStep % o.LogEvery == 0) progress.Report(MaeTrainingProgress.From<MaeFineTuneProgress>(r));
        }

        public override void EndOfEpoch(int epoch, MaeTrainingState state, MaeStepReport report, Action<string, double, int>? tensorBoard)
        {
            double? accuracy = null, loss = null;
            if (validation is not null)
            {
                (accuracy, loss) = Evaluate(model, validation, o.EvaluationBatchSize);
                ValidationAccuracies.Add(accuracy.Value);
                ValidationLosses.Add(loss.Value);
            }
            progress?.Report(MaeTrainingProgress.From<MaeFineTuneProgress>(report) with { EndOfEpoch = true, EpochLoss = state.EpochLosses[^1], ValidationAccuracy = accuracy, ValidationLoss = loss });
        }

        static (double Accuracy, double Loss) Evaluate(AttentiveClassifier model, TokenCache data, int batchSize)
        {
            var device = model.head.weight!.device;
            model.eval();
            long correct = 0;
            double lossSum = 0;
            try
            {
                using var noGrad = no_grad();
                for (long start = 0; start < data.Count; start += batchSize)
                {
                    using var scope = NewDisposeScope();
                    long end = Math.Min(start + batchSize, data.Count);
                    var logits = model.forward(data.Tokens[TensorIndex.Slice(start, end)].to(device));
                    var y = data.Labels[TensorIndex.Slice(start, end)].to(device);
                    lossSum += nn.functional.cross_entropy(logits, y, reduction: nn.Reduction.Sum).item<float>();
                    correct += logits.argmax(-1).eq(y).sum().item<long>();
                }
            }
            finally { model.train(); }
            return ((double)correct / data.Count, lossSum / data.Count);
        }

        public override void CheckResume(string path, MaeTrainingCheckpointHeader header, long stepsPerEpoch, int epochs)
            => throw new NotSupportedException("The attentive probe does not resume from checkpoints.");

        public override MaeTrainingCheckpointHeader CreateHeader(MaeTrainingState state, int epochsCompleted)
            => throw new NotSupportedException("The attentive probe does not write checkpoints.");
    }
}

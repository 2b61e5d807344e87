using System.Diagnostics;
using Mae.MLNet.Interop;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Training;
using TorchSharp;
using TorchSharp.Modules;
using Mae.MLNet.Input;
using static TorchSharp.torch;

namespace Mae.MLNet.FineTuning;

/// <summary>
/// Fine-tunes a <see cref="VitClassifier"/> or a <see cref="ConvNextV2"/> end to end with the reference recipe (facebookresearch/mae
/// <c>main_finetune.py</c> / <c>engine_finetune.py</c> <c>train_one_epoch</c>): per batch, at each accumulation
/// boundary every parameter group's lr is set to <c>schedule(epoch + step/steps) × group scale</c> (layer-wise
/// decay); the batch is augmented (RandomResizedCrop + flip + normalise), optionally mixed (mixup / cutmix), passed
/// through the model in training mode (drop path), and the label-smoothing (or soft-target) cross entropy is
/// back-propagated; AdamW steps every <see cref="Training.MaeTrainingOptions.AccumIter"/> batches. After each epoch the
/// validation source (if any) is evaluated (top-1 accuracy, plain cross entropy) and the best epoch's weights are
/// kept. Checkpoints allow an exact resume.
/// </summary>
public sealed class MaeFineTuner
{
    public MaeFineTuneOptions Options { get; }

    public MaeFineTuner(MaeFineTuneOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options.Clone().Validate();
    }

    /// <summary>A classifier started from a pre-trained encoder (e.g. <c>MaePretrain</c>'s or
    /// <see cref="MaeWeightFile.LoadEncoder"/>'s): patch embedding, cls token, blocks (and <c>norm</c> when
    /// <paramref name="globalPool"/> is false) are copied, position embeddings interpolated when
    /// <paramref name="imageSize"/> gives another grid; fc_norm and head are new (head trunc-normal std 2e-5). libtorch
    /// is seeded with <paramref name="seed"/> first so the new layers repeat.</summary>
    public static VitClassifier FromEncoder(MaeEncoder encoder, int numClasses, bool globalPool = true, long seed = 0, int? imageSize = null)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        CheckClasses(numClasses);
        var config = imageSize is int s ? (encoder.Config with { ImageSize = s }).Validate() : encoder.Config;
        TorchRuntime.Seed(seed);
        var model = new VitClassifier(config, numClasses, globalPool);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        // The encoder's tensors under the official names (an encoder inside a MaskedAutoencoder registers none itself).
        var source = new Dictionary<string, Tensor>(StringComparer.Ordinal)
        {
            ["cls_token"] = encoder.cls_token.detach().cpu(), ["pos_embed"] = encoder.pos_embed.detach().cpu(),
        };
        foreach (var (prefix, part) in new (string, nn.Module)[] { ("patch_embed", encoder.patch_embed), ("blocks", encoder.blocks), ("norm", encoder.norm) })
            foreach (var (name, t) in part.state_dict()) source[$"{prefix}.{name}"] = t.detach().cpu();
        var selection = WeightNames.ForModel(model, source);
        if (!selection.Fits)
            throw new ArgumentException($"The encoder does not fit the classifier: {string.Join("; ", selection.Missing.Select(k => $"'{k}' missing").Concat(selection.ShapeDifferences))}.");
        var target = model.state_dict();
        foreach (var (key, value) in selection.Values) target[key].copy_(value);
        return model;
    }

    /// <summary>A classifier from scratch (random init as the reference's), libtorch seeded with <paramref name="seed"/>.</summary>
    public static VitClassifier FromScratch(MaeConfig config, int numClasses, bool globalPool = true, long seed = 0)
    {
        ArgumentNullException.ThrowIfNull(config);
        CheckClasses(numClasses);
        TorchRuntime.Seed(seed);
        return new VitClassifier(config.Validate(), numClasses, globalPool);
    }

    /// <summary>A ConvNeXt V2 classifier started from a pre-trained one (<see cref="MaeWeightFile.LoadConvNextV2"/> of a
    /// timm <c>*.fcmae</c> file or <c>mae pretrain --model convnextv2-*</c>'s <c>convnextv2.safetensors</c>, or
    /// <c>Fcmae.ToEncoder()</c>): stem, stages and <c>head.norm</c> copied (an FCMAE encoder's norm is 1, 0, as timm
    /// loads fcmae weights); <c>head.fc</c> new, trunc-normal std 2e-5 and bias 0, as the official ConvNeXt-V2
    /// <c>main_finetune.py</c> initialises it after loading — unless <paramref name="encoder"/> is a classifier of
    /// <paramref name="numClasses"/> classes, whose head is copied too. libtorch is seeded with <paramref name="seed"/> first.
    /// <paramref name="imageSize"/>: the resolution to fine-tune at (a multiple of the total stride; the network is
    /// fully convolutional, so no weight changes).</summary>
    // RS0026: these overloads differ in their first parameter's type (the model), so their optional parameters
    // cannot make a call ambiguous.
#pragma warning disable RS0026
    public static ConvNextV2 FromEncoder(ConvNextV2 encoder, int numClasses, long seed = 0, int? imageSize = null)
#pragma warning restore RS0026
    {
        ArgumentNullException.ThrowIfNull(encoder);
        CheckClasses(numClasses);
        var config = imageSize is int s ? (encoder.Config with { ImageSize = s }).Validate() : encoder.Config;
        TorchRuntime.Seed(seed);
        var model = new ConvNextV2(config, numClasses);
        using var noGrad = no_grad();
        var target = model.state_dict();
        bool keepHead = encoder.NumClasses == numClasses;
        foreach (var (name, t) in encoder.state_dict())
            if (keepHead || !name.StartsWith("head.fc.", StringComparison.Ordinal)) target[name].copy_(t);
        if (keepHead) return model;
        VitClassifier.TruncNormal(model.head!.fc!.weight!, std: 2e-5);
        nn.init.zeros_(model.head.fc.bias!);
        return model;
    }

    /// <summary>A ConvNeXt V2 classifier from scratch (timm's init; <c>head.fc</c> scaled by 0.001, the official
    /// <c>main_finetune.py</c>'s <c>--head_init_scale</c>), libtorch seeded with <paramref name="seed"/>.</summary>
    // RS0026: these overloads differ in their first parameter's type (the model), so their optional parameters
    // cannot make a call ambiguous.
#pragma warning disable RS0026
    public static ConvNextV2 FromScratch(ConvNextV2Config config, int numClasses, long seed = 0)
#pragma warning restore RS0026
    {
        ArgumentNullException.ThrowIfNull(config);
        CheckClasses(numClasses);
        TorchRuntime.Seed(seed);
        var model = new ConvNextV2(config.Validate(), numClasses);
        using var noGrad = no_grad();
        model.head!.fc!.weight!.TimesInPlace(0.001);
        model.head.fc.bias!.TimesInPlace(0.001);
        return model;
    }

    static void CheckClasses(int numClasses)
    {
        if (numClasses < 2)
            throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, $"A classifier needs at least 2 classes; got {numClasses}.");
    }

    /// <summary>
    /// Trains <paramref name="model"/> in place on <paramref name="train"/> (it ends on the training device, in eval
    /// mode). Options, data and model are checked first, so bad input throws before any step.
    /// </summary>
    public MaeFineTuneResult Train(VitClassifier model, IMaeLabeledImageSource train, IMaeLabeledImageSource? validation = null,
        IProgress<MaeFineTuneProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        return Train(FineTuneNet.Of(model), train, validation, progress, cancellationToken);
    }

    /// <summary>
    /// Trains a ConvNeXt V2 classifier (<see cref="FromEncoder(ConvNextV2, int, long, int?)"/>,
    /// <see cref="FromScratch(ConvNextV2Config, int, long)"/> or a loaded one with a head) in place, with the same
    /// recipe, engine and checkpoints; layer decay by stage (<see cref="ConvNextV2.LayerId"/>), drop path by block.
    /// </summary>
    // RS0026: these overloads differ in their first parameter's type (the model), so their optional parameters
    // cannot make a call ambiguous.
#pragma warning disable RS0026
    public MaeFineTuneResult Train(ConvNextV2 model, IMaeLabeledImageSource train, IMaeLabeledImageSource? validation = null,
        IProgress<MaeFineTuneProgress>? progress = null, CancellationToken cancellationToken = default)
#pragma warning restore RS0026
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.NumClasses < 2)
            throw new ArgumentException(
                $"This ConvNeXt V2 has {model.NumClasses} classes; fine-tuning needs a classifier head of at least 2 (MaeFineTuner.FromEncoder builds one on an encoder).", nameof(model));
        return Train(FineTuneNet.Of(model), train, validation, progress, cancellationToken);
    }

    MaeFineTuneResult Train(FineTuneNet model, IMaeLabeledImageSource train, IMaeLabeledImageSource? validation,
        IProgress<MaeFineTuneProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(train);
        var o = Options;
        var augmentation = o.ResolveAugmentation(model.Geometry).Validate();
        long stepsPerEpoch = CheckData(model, train, validation, augmentation, o);

        var device = MaeCollective.TrainingDevice(o.Device, o.Collective); // data-parallel: one GPU per rank
        // On CUDA, fp32 matrix math uses TF32 tensor cores (as PyTorch's default for cuDNN convolutions and the
        // reference's Ampere runs); the CPU is unaffected. Both settings are the caller's again afterwards.
        using var settings = new TorchSettingsScope(o.Threads, allowTf32: device.type == DeviceType.CUDA);
        bool posGradBefore = model.PositionEmbeddingTrains;
        double dropPathBefore = model.DropPathRate;
        try
        {
            return Run(model, train, validation, progress, cancellationToken, o, augmentation, stepsPerEpoch, device);
        }
        finally
        {
            model.PositionEmbeddingTrains = posGradBefore;
            model.DropPathRate = dropPathBefore;
            model.Module.eval();
        }
    }

    MaeFineTuneResult Run(FineTuneNet model, IMaeLabeledImageSource train, IMaeLabeledImageSource? validation,
        IProgress<MaeFineTuneProgress>? progress, CancellationToken ct, MaeFineTuneOptions o,
        MaeAugmentationOptions augmentation, long stepsPerEpoch, Device device)
    {
        using var task = new FineTuneTask(model, train, validation, o, augmentation, progress);
        var settings = o.EngineSettings(device.type, o.ClipGradNorm);
        var state = MaeTrainingEngine.Run(task, settings, stepsPerEpoch, device, ct);

        bool restored = false;
        if (task.Best is not null && o.KeepBestWeights && validation is not null)
        {
            using var noGrad = no_grad();
            var sd = model.Module.state_dict();
            foreach (var (name, t) in task.Best) sd[name].copy_(t);
            restored = true;
        }
        return MaeTrainingResult.From<MaeFineTuneResult>(state, stepsPerEpoch, o.PeakLearningRate) with
        {
            ValidationAccuracies = task.ValidationAccuracies, ValidationLosses = task.ValidationLosses,
            BestEpoch = task.BestEpoch, BestValidationAccuracy = task.BestAccuracy, RestoredBestWeights = restored,
        };
    }

    /// <summary>Fine-tuning's hooks: augmentation, mixup and the (soft-target / label-smoothing) cross entropy of a
    /// batch; layer-decay groups; validation and the best epoch's weights at each epoch's end (kept in checkpoints).</summary>
    sealed class FineTuneTask : MaeTrainingTask<(Tensor Images, Tensor Labels)>, IDisposable
    {
        readonly FineTuneNet model;
        readonly IMaeLabeledImageSource train;
        readonly IMaeLabeledImageSource? validation;
        readonly MaeFineTuneOptions o;
        readonly IProgress<MaeFineTuneProgress>? progress;
        readonly MaePretrainAugmentation trainTransform, evalTransform;
        readonly MaeMixup? mixup;

        public List<double> ValidationAccuracies { get; private set; } = new();
        public List<double> ValidationLosses { get; private set; } = new();
        public Dictionary<string, Tensor>? Best { get; private set; }
        public int? BestEpoch { get; private set; }
        public double? BestAccuracy { get; private set; }

        public FineTuneTask(FineTuneNet model, IMaeLabeledImageSource train, IMaeLabeledImageSource? validation, MaeFineTuneOptions o,
            MaeAugmentationOptions augmentation, IProgress<MaeFineTuneProgress>? progress)
        {
            this.model = model;
            this.train = train;
            this.validation = validation;
            this.o = o;
            this.progress = progress;
            trainTransform = new MaePretrainAugmentation(augmentation);
            evalTransform = EvaluationTransform(augmentation);
            mixup = o.MixupActive ? new MaeMixup(o, model.NumClasses) : null;
        }

        public override nn.Module Model => model.Module;
        public override string DataDescription => $"training source (Count {train.Count})";
        public override string LossTag => "loss";
        public override MaeTrainingCheckpoint Checkpoint => MaeFineTuneCheckpoint.Training;

        public override void PrepareModel(ScalarType? computeDType)
        {
            model.ComputeDType = computeDType;
            model.DropPathRate = o.DropPath;
            if (o.TrainPositionEmbedding) model.PositionEmbeddingTrains = true;
        }

        public override IReadOnlyList<MaeParamGroup> ParamGroups() =>
            model.ParamGroups(o.WeightDecay, o.LayerDecay)
                .Select(g => new MaeParamGroup(g.Name, g.LrScale, g.WeightDecay, g.Parameters)).ToList();

        // Every source makes its batches from the plan, so a resume can start anywhere in an epoch.
        public override bool CanSkipBatches => true;

        /// <summary>The epoch's plan; data-parallel: this rank's part (<see cref="MaeDataShard"/>) of the (seed, epoch) order.</summary>
        public override IEnumerable<(Tensor Images, Tensor Labels)> Batches(int epoch, Device device, long skipBatches)
        {
            var plan = new MaeEpochPlan { Seed = o.Seed, Epoch = epoch, BatchSize = o.BatchSize, SkipBatches = skipBatches, TargetDevice = device };
            if (o.Collective is { } c)
                plan = plan with { BatchSize = MaeDataShard.RankBatch(o.BatchSize, c.WorldSize), Rank = c.Rank, WorldSize = c.WorldSize };
            return train.Batches(plan.Validate());
        }

        public override Tensor Loss((Tensor Images, Tensor Labels) batch, Device device)
        {
            // A file source hands over the model's input (cropped, flipped, normalised) itself.
            var images = MaeTrainingEngine.ToDevice(batch.Images, device);
            if (train is not IMaeModelInputSource) images = trainTransform.Apply(images);
            var labels = MaeTrainingEngine.ToDevice(batch.Labels, device);
            if (mixup is not null)
            {
                var (mixed, targets, _) = mixup.Apply(images, labels);
                return MaeClassificationLoss.SoftTargetCrossEntropy(model.Module.forward(mixed), targets);
            }
            return MaeClassificationLoss.LabelSmoothingCrossEntropy(model.Module.forward(images), labels, o.LabelSmoothing);
        }

        public override void Release((Tensor Images, Tensor Labels) batch)
        {
            batch.Images.Dispose();
            batch.Labels.Dispose();
        }

        static MaeFineTuneProgress Progress(MaeStepReport r) => MaeTrainingProgress.From<MaeFineTuneProgress>(r);

        // Step reports every LogEvery steps; the epoch's end has its own report (EndOfEpoch).
        public override void Report(MaeStepReport r) // the engine calls it on rank 0 only
        {
            if (progress is not null && r.GlobalStep % o.LogEvery == 0) progress.Report(Progress(r));
        }

        public override void EndOfEpoch(int epoch, MaeTrainingState state, MaeStepReport report, Action<string, double, int>? tensorBoard)
        {
            double? accuracy = null, valLoss = null;
            if (validation is not null)
            {
                (accuracy, valLoss) = EvaluateModel(model.Module, validation, evalTransform, o.EvaluationBatchSize, model.Device);
                ValidationAccuracies.Add(accuracy.Value);
                ValidationLosses.Add(valLoss.Value);
                if (BestAccuracy is null || accuracy.Value > BestAccuracy.Value)
                {
                    BestAccuracy = accuracy;
                    BestEpoch = epoch;
                    if (o.KeepBestWeights) Best = Snapshot(model.Module, Best);
                }
                tensorBoard?.Invoke("perf/test_acc1", accuracy.Value * 100, epoch);
                tensorBoard?.Invoke("perf/test_loss", valLoss.Value, epoch);
            }
            if (state.IsLead) progress?.Report(Progress(report) with
            {
                EndOfEpoch = true, EpochLoss = state.EpochLosses[^1], ValidationAccuracy = accuracy, ValidationLoss = valLoss, BestEpoch = BestEpoch,
            });
        }

        public override void CheckResume(string path, MaeTrainingCheckpointHeader header, long stepsPerEpoch, int epochs)
        {
            var h = (MaeFineTuneCheckpointHeader)header;
            if (model.Mismatch(h) is string written)
                throw new InvalidOperationException($"Checkpoint '{path}' was written for {written}; this one is {model.Describe()}.");
            if (h.EpochsCompleted > epochs)
                throw new InvalidOperationException($"Checkpoint '{path}' has already completed {h.EpochsCompleted} epochs, more than Epochs = {epochs}.");
            // Data-parallel runs may resume at another world size, whose padding can change the step count.
            if (h.StepsPerEpoch != stepsPerEpoch && o.Collective is null)
                throw new InvalidOperationException($"Checkpoint '{path}' was written with {h.StepsPerEpoch} steps per epoch; this data and batch size give {stepsPerEpoch}.");
            BestEpoch = h.BestEpoch;
            BestAccuracy = h.BestValidationAccuracy;
        }

        public override MaeTrainingCheckpointHeader CreateHeader(MaeTrainingState state, int epochsCompleted) => model.Describe(new MaeFineTuneCheckpointHeader
        {
            EpochsCompleted = epochsCompleted, GlobalStep = state.GlobalStep, OptimizerSteps = state.OptimizerSteps, StepsPerEpoch = state.StepsPerEpoch,
            Options = o, BestEpoch = BestEpoch, BestValidationAccuracy = BestAccuracy, SavedUtc = DateTime.UtcNow,
        });

        public override void WriteExtras(BinaryWriter w) => MaeFineTuneCheckpoint.WriteExtras(w, ValidationAccuracies, ValidationLosses, Best);

        public override void ReadExtras(BinaryReader r, int formatVersion)
        {
            (ValidationAccuracies, ValidationLosses, var best) = MaeFineTuneCheckpoint.ReadExtras(r);
            if (Best is not null) foreach (var t in Best.Values) t.Dispose();
            Best = best;
        }

        public void Dispose()
        {
            if (Best is not null) foreach (var t in Best.Values) t.Dispose();
            Best = null;
        }
    }

    /// <summary>CPU copies of the model's state (reusing <paramref name="previous"/>'s tensors).</summary>
    static Dictionary<string, Tensor> Snapshot(nn.Module model, Dictionary<string, Tensor>? previous)
    {
        var result = previous ?? new Dictionary<string, Tensor>(StringComparer.Ordinal);
        using var noGrad = no_grad();
        foreach (var (name, t) in model.state_dict())
        {
            if (result.TryGetValue(name, out var old)) { old.copy_(t); continue; }
            var copy = t.detach().cpu().clone();
            copy.DetachFromDisposeScope();
            result[name] = copy;
        }
        return result;
    }

    /// <summary>Normalisation only (no crop, no flip): what validation and inference feed the model.</summary>
    internal static MaePretrainAugmentation EvaluationTransform(MaeAugmentationOptions a) => new(new MaeAugmentationOptions
    {
        OutputSize = a.OutputSize, Channels = a.Channels, Normalization = a.ResolvedNormalization(),
        RandomResizedCrop = false, HorizontalFlipProbability = 0, ClampToUnitRange = false,
    });

    /// <summary>Top-1 accuracy and mean cross entropy of <paramref name="model"/> over the whole source (eval mode).
    /// <paramref name="transform"/> maps [0, 1] pixels to model inputs (null: fed as they are); a source that
    /// makes model input itself (the file sources) is not transformed.</summary>
    public static (double Accuracy, double Loss) Evaluate(VitClassifier model, IMaeLabeledImageSource source, IBatchTransform? transform,
        int batchSize = 256, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        return EvaluateModel(model, source, transform, batchSize, device ?? model.head.weight!.device);
    }

    /// <summary><see cref="Evaluate(VitClassifier, IMaeLabeledImageSource, IBatchTransform?, int, Device?)"/> for a ConvNeXt V2 classifier.</summary>
    // RS0026: these overloads differ in their first parameter's type (the model), so their optional parameters
    // cannot make a call ambiguous.
#pragma warning disable RS0026
    public static (double Accuracy, double Loss) Evaluate(ConvNextV2 model, IMaeLabeledImageSource source, IBatchTransform? transform,
        int batchSize = 256, Device? device = null)
#pragma warning restore RS0026
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.head?.fc is null) throw new ArgumentException("This ConvNeXt V2 has no classifier head (0 classes); there is nothing to evaluate.", nameof(model));
        return EvaluateModel(model, source, transform, batchSize, device ?? model.head.fc.weight!.device);
    }

    static (double Accuracy, double Loss) EvaluateModel(nn.Module<Tensor, Tensor> model, IMaeLabeledImageSource source, IBatchTransform? transform,
        int batchSize, Device device)
    {
        ArgumentNullException.ThrowIfNull(source);
        bool wasTraining = model.training;
        model.eval();
        long correct = 0, seen = 0;
        double lossSum = 0;
        try
        {
            ForEachEvaluationBatch(source, transform, batchSize, device, (x, y) =>
            {
                var logits = model.forward(x);
                lossSum += nn.functional.cross_entropy(logits.to(float32), y, reduction: nn.Reduction.Sum).item<float>();
                correct += logits.argmax(-1).eq(y).sum().item<long>();
                seen += y.shape[0];
            });
        }
        finally { if (wasTraining) model.train(); }
        return (seen == 0 ? 0 : (double)correct / seen, seen == 0 ? 0 : lossSum / seen);
    }

    /// <summary>
    /// Every image of <paramref name="source"/> once, in order, as model input on <paramref name="device"/>: a file
    /// source's evaluation batches (its own eval transform), otherwise the [0, 1] pixels through
    /// <paramref name="transform"/> (null: as they are). <paramref name="use"/> gets images and labels inside a dispose
    /// scope per batch, under no_grad.
    /// </summary>
    internal static void ForEachEvaluationBatch(IMaeLabeledImageSource source, IBatchTransform? transform, int batchSize, Device device,
        Action<Tensor, Tensor> use)
    {
        using var noGrad = no_grad();
        var batches = source.Batches(new MaeEpochPlan { BatchSize = batchSize, Training = false, TargetDevice = device }.Validate());
        foreach (var (images, labels) in batches)
        {
            using var ownedImages = images;
            using var ownedLabels = labels;
            using var scope = NewDisposeScope();
            var x = images.to(device);
            if (transform is not null && source is not IMaeModelInputSource) x = transform.Apply(x);
            use(x, labels.to(device));
        }
    }

    static long CheckData(FineTuneNet model, IMaeLabeledImageSource train, IMaeLabeledImageSource? validation,
        MaeAugmentationOptions augmentation, MaeFineTuneOptions o)
    {
        var config = model.Geometry;
        CheckClasses(model.NumClasses);
        var expected = new MaeImageShape(config.InChannels, config.ImageSize, config.ImageSize);
        if (augmentation.OutputSize != config.ImageSize || augmentation.Channels != config.InChannels)
            throw new ArgumentException(
                $"The augmentation produces {augmentation.Channels}×{augmentation.OutputSize}×{augmentation.OutputSize} images; the model takes {expected}.", nameof(o.Augmentation));
        void CheckSource(IMaeLabeledImageSource s, string name)
        {
            if (s.Count < 1) throw new ArgumentException($"The {name} source is empty (Count = {s.Count}): fine-tuning needs labelled images.", name);
            if (s.Shape != expected)
                throw new ArgumentException($"The model expects images of {expected} but the {name} source holds {s.Shape}. Resize the images or build the model for this size.", name);
            if (s.LabelBound > model.NumClasses)
                throw new ArgumentException($"The {name} source has labels up to {s.LabelBound - 1}; the classifier has {model.NumClasses} classes (labels 0 … {model.NumClasses - 1}).", name);
        }
        CheckSource(train, "train");
        if (validation is not null) CheckSource(validation, "validation");
        if (o.Collective is { } c)
        {
            if (!train.ReadsShards && c.WorldSize > 1)
                throw new ArgumentException(
                    $"Data-parallel fine-tuning needs a training source each rank can read its shard of (ReadsShards: MaeLabeledImageSource, MaeLabeledImageFileSource); got {train.GetType().Name}.", nameof(train));
            long shardSteps = MaeDataShard.StepsPerEpoch(train.Count, o.BatchSize, c.WorldSize);
            if (shardSteps < Math.Max(1, o.AccumIter))
                throw new ArgumentException(
                    $"Each of the {c.WorldSize} ranks gets {shardSteps} batches of {o.BatchSize / c.WorldSize} per epoch (BatchSize {o.BatchSize} is the global batch) but AccumIter = {o.AccumIter}: the optimizer would never step.", nameof(train));
            return shardSteps;
        }
        if (train.Count < o.BatchSize)
            throw new ArgumentException(
                $"The training source has {train.Count} images, fewer than BatchSize = {o.BatchSize}; incomplete batches are dropped, so an epoch would have no step. Lower BatchSize or add images.", nameof(train));
        long steps = train.Count / o.BatchSize;
        if (steps < o.AccumIter)
            throw new ArgumentException($"An epoch has {steps} batches but AccumIter = {o.AccumIter}: the optimizer would never step.", nameof(train));
        return steps;
    }
}

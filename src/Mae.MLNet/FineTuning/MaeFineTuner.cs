using System.Diagnostics;
using Mae.MLNet.Interop;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Training;
using Mae.MLNet.Training.Augmentation;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.FineTuning;

/// <summary>
/// Fine-tunes a <see cref="VitClassifier"/> end to end with the reference recipe (facebookresearch/mae
/// <c>main_finetune.py</c> / <c>engine_finetune.py</c> <c>train_one_epoch</c>): per batch, at each accumulation
/// boundary every parameter group's lr is set to <c>schedule(epoch + step/steps) × group scale</c> (layer-wise
/// decay); the batch is augmented (RandomResizedCrop + flip + normalise), optionally mixed (mixup / cutmix), passed
/// through the model in training mode (drop path), and the label-smoothing (or soft-target) cross entropy is
/// back-propagated; AdamW steps every <see cref="MaeFineTuneOptions.AccumIter"/> batches. After each epoch the
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
    /// <see cref="MaeCheckpoint.LoadEncoder"/>'s): patch embedding, cls token, blocks (and <c>norm</c> when
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
        var target = model.Encoder;
        target.cls_token.copy_(encoder.cls_token.detach().cpu());
        var pos = encoder.pos_embed.detach().cpu();
        if (pos.shape[1] != target.pos_embed.shape[1]) pos = PosEmbedInterpolation.Interpolate(pos, config.GridSize);
        target.pos_embed.copy_(pos);
        Copy(encoder.patch_embed, target.patch_embed);
        Copy(encoder.blocks, target.blocks);
        if (!globalPool) Copy(encoder.norm, target.norm);
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

    static void Copy(nn.Module from, nn.Module to)
    {
        var src = from.state_dict();
        foreach (var (name, dest) in to.state_dict())
        {
            if (!src.TryGetValue(name, out var value) || !value.shape.SequenceEqual(dest.shape))
                throw new ArgumentException($"The encoder's '{name}' does not fit the classifier ({(value is null ? "missing" : $"[{string.Join(", ", value.shape)}] vs [{string.Join(", ", dest.shape)}]")}).");
            dest.copy_(value.detach().cpu());
        }
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
        ArgumentNullException.ThrowIfNull(train);
        var o = Options;
        var augmentation = o.ResolveAugmentation(model.Config).Validate();
        long stepsPerEpoch = CheckData(model, train, validation, augmentation, o);

        var device = o.Device.Resolve();
        // On CUDA, fp32 matrix math uses TF32 tensor cores (as PyTorch's default for cuDNN convolutions and the
        // reference's Ampere runs); the CPU is unaffected.
        if (device.type == DeviceType.CUDA) TorchRuntime.AllowTf32();
        int threadsBefore = TorchRuntime.Threads;
        bool posGradBefore = model.Encoder.pos_embed.requires_grad;
        double dropPathBefore = model.DropPathRate;
        if (o.Threads is int threads) TorchRuntime.Threads = threads;
        try
        {
            return Run(model, train, validation, progress, cancellationToken, o, augmentation, stepsPerEpoch, device);
        }
        finally
        {
            if (o.Threads is not null) TorchRuntime.Threads = threadsBefore;
            model.Encoder.pos_embed.requires_grad = posGradBefore;
            model.DropPathRate = dropPathBefore;
            model.eval();
        }
    }

    MaeFineTuneResult Run(VitClassifier model, IMaeLabeledImageSource train, IMaeLabeledImageSource? validation,
        IProgress<MaeFineTuneProgress>? progress, CancellationToken ct, MaeFineTuneOptions o,
        MaeAugmentationOptions augmentation, long stepsPerEpoch, Device device)
    {
        var config = model.Config;
        string? resumeFrom = null;
        if (o.CheckpointDir is not null)
        {
            MaeFineTuneCheckpoint.Container.DeleteStaleTemporaries(o.CheckpointDir);
            if (o.Resume) resumeFrom = MaeFineTuneCheckpoint.FindLatest(o.CheckpointDir);
        }
        using var reader = resumeFrom is null ? null : MaeFineTuneCheckpoint.Reader.Open(resumeFrom);
        if (reader is not null)
        {
            var h = reader.Header;
            if (h.Config != config || h.NumClasses != model.NumClasses || h.GlobalPool != model.GlobalPool)
                throw new InvalidOperationException(
                    $"Checkpoint '{resumeFrom}' was written for a different classifier ({h.Config}, {h.NumClasses} classes, global pool {h.GlobalPool}); this one is {config}, {model.NumClasses} classes, global pool {model.GlobalPool}.");
            if (h.EpochsCompleted > o.Epochs)
                throw new InvalidOperationException($"Checkpoint '{resumeFrom}' has already completed {h.EpochsCompleted} epochs, more than Epochs = {o.Epochs}.");
            if (h.StepsPerEpoch != stepsPerEpoch)
                throw new InvalidOperationException($"Checkpoint '{resumeFrom}' was written with {h.StepsPerEpoch} steps per epoch; this data and batch size give {stepsPerEpoch}.");
        }
        else TorchRuntime.Seed(o.Seed);

        model.Encoder.ComputeDType = o.Precision == MaePrecision.Bf16 ? ScalarType.BFloat16 : null;
        model.DropPathRate = o.DropPath;
        if (o.TrainPositionEmbedding) model.Encoder.pos_embed.requires_grad = true;
        model.to(device);
        reader?.LoadModel(model);
        model.train();

        var groups = MaeLayerDecay.ParamGroups(model, config.Depth, o.WeightDecay, o.NoWeightDecayNames, o.LayerDecay);
        double peakLr = o.PeakLearningRate;
        var paramGroups = groups.Select(g => new AdamW.ParamGroup(g.Parameters.Select(p => p.Parameter), lr: peakLr * g.LrScale,
            beta1: o.Beta1, beta2: o.Beta2, eps: o.Epsilon, weight_decay: g.WeightDecay)).ToList();
        var scales = groups.Select(g => g.LrScale).ToArray();
        var trainable = groups.SelectMany(g => g.Parameters.Select(p => p.Parameter)).ToList();
        using var optimizer = optim.AdamW(paramGroups, lr: peakLr, beta1: o.Beta1, beta2: o.Beta2, eps: o.Epsilon, weight_decay: o.WeightDecay);

        int startEpoch = 0;
        long globalStep = 0, optimizerSteps = 0;
        var history = new MaeFineTuneCheckpoint.History(new(), new(), new(), new());
        Dictionary<string, Tensor>? best = null;
        int? bestEpoch = null;
        double? bestAccuracy = null;
        try
        {
            if (reader is not null)
            {
                reader.LoadOptimizer(optimizer);
                using (var rng = reader.ReadRngState()) torch.random.set_rng_state(rng);
                history = reader.ReadHistory();
                best = reader.ReadBestWeights();
                startEpoch = reader.Header.EpochsCompleted;
                globalStep = reader.Header.GlobalStep;
                optimizerSteps = reader.Header.OptimizerSteps;
                bestEpoch = reader.Header.BestEpoch;
                bestAccuracy = reader.Header.BestValidationAccuracy;
            }

            var trainTransform = new MaePretrainAugmentation(augmentation);
            var evalTransform = EvaluationTransform(augmentation);
            var mixup = o.MixupActive ? new MaeMixup(o, model.NumClasses) : null;
            var total = Stopwatch.StartNew();
            int accum = o.AccumIter;
            string? lastCheckpoint = null;
            long totalSteps = stepsPerEpoch * o.Epochs;

            for (int epoch = startEpoch; epoch < o.Epochs; epoch++)
            {
                model.train();
                using (NewDisposeScope()) optimizer.zero_grad();
                var clock = Stopwatch.StartNew();
                double lossSum = 0, lr = 0;
                long step = 0;
                var epochBatches = train is IMaePlannedLabeledSource planned
                    ? planned.Batches(new MaeEpochPlan { Seed = o.Seed, Epoch = epoch, BatchSize = o.BatchSize, TargetDevice = device }.Validate())
                    : train.Batches(o.BatchSize, shuffle: true, dropLast: true);
                foreach (var (rawImages, rawLabels) in epochBatches)
                {
                    ct.ThrowIfCancellationRequested();
                    using var ownedImages = rawImages;
                    using var ownedLabels = rawLabels;
                    using var noGc = NoGcScope.Enter(NoGcScope.TrainingBudget); // see NoGcScope: no GC while TorchSharp temporaries are in native calls
                    using var scope = NewDisposeScope();
                    if (step % accum == 0)
                    {
                        lr = MaeLrSchedule.At(step / (double)stepsPerEpoch + epoch, peakLr, o.MinLearningRate, o.WarmupEpochs, o.Epochs);
                        for (int g = 0; g < scales.Length; g++) optimizer.ParamGroups.ElementAt(g).LearningRate = lr * scales[g];
                    }
                    // A planned source hands over the model's input (cropped, flipped, normalised) itself.
                    var images = train is IMaePlannedLabeledSource ? rawImages.to(device) : trainTransform.Apply(rawImages.to(device));
                    var labels = rawLabels.to(device);
                    Tensor loss;
                    if (mixup is not null)
                    {
                        var (mixed, targets, _) = mixup.Apply(images, labels);
                        loss = MaeClassificationLoss.SoftTargetCrossEntropy(model.forward(mixed), targets);
                    }
                    else loss = MaeClassificationLoss.LabelSmoothingCrossEntropy(model.forward(images), labels, o.LabelSmoothing);
                    double lossValue = loss.item<float>();
                    if (!double.IsFinite(lossValue)) throw new MaeNonFiniteLossException(epoch, step, globalStep, lossValue);

                    (accum == 1 ? loss : loss.DividedBy(accum)).backward();
                    if ((step + 1) % accum == 0)
                    {
                        if (o.ClipGradNorm is double clip) nn.utils.clip_grad_norm_(trainable, clip);
                        optimizer.step();
                        optimizer.zero_grad();
                        optimizerSteps++;
                    }
                    history.StepLosses.Add((float)lossValue);
                    lossSum += lossValue;
                    globalStep++;
                    step++;
                    if (progress is not null && globalStep % o.LogEvery == 0)
                        progress.Report(Report(o, epoch, step, stepsPerEpoch, globalStep, lossValue, lr, clock, total, totalSteps));
                }
                if (step != stepsPerEpoch)
                    throw new InvalidDataException($"The training source yielded {step} batches in epoch {epoch}; its Count ({train.Count}) at batch size {o.BatchSize} promises {stepsPerEpoch}.");
                history.EpochLosses.Add(lossSum / step);

                double? accuracy = null, valLoss = null;
                if (validation is not null)
                {
                    (accuracy, valLoss) = Evaluate(model, validation, evalTransform, o.EvaluationBatchSize, device);
                    history.ValidationAccuracies.Add(accuracy.Value);
                    history.ValidationLosses.Add(valLoss.Value);
                    if (bestAccuracy is null || accuracy.Value > bestAccuracy.Value)
                    {
                        bestAccuracy = accuracy;
                        bestEpoch = epoch;
                        if (o.KeepBestWeights) best = Snapshot(model, best);
                    }
                }
                progress?.Report(Report(o, epoch, step, stepsPerEpoch, globalStep, history.StepLosses[^1], lr, clock, total, totalSteps) with
                {
                    EndOfEpoch = true, EpochLoss = history.EpochLosses[^1], ValidationAccuracy = accuracy, ValidationLoss = valLoss, BestEpoch = bestEpoch,
                });

                if (o.CheckpointDir is not null && ((epoch + 1) % o.CheckpointEvery == 0 || epoch + 1 == o.Epochs))
                {
                    var header = new MaeFineTuneCheckpointHeader
                    {
                        EpochsCompleted = epoch + 1, GlobalStep = globalStep, OptimizerSteps = optimizerSteps, StepsPerEpoch = stepsPerEpoch,
                        Config = config, NumClasses = model.NumClasses, GlobalPool = model.GlobalPool, Options = o,
                        BestEpoch = bestEpoch, BestValidationAccuracy = bestAccuracy, SavedUtc = DateTime.UtcNow,
                    };
                    lastCheckpoint = MaeFineTuneCheckpoint.PathFor(o.CheckpointDir, epoch + 1);
                    MaeFineTuneCheckpoint.Save(lastCheckpoint, header, model, optimizer, history, best);
                }
            }

            bool restored = false;
            if (best is not null && o.KeepBestWeights && validation is not null)
            {
                using var noGrad = no_grad();
                var sd = model.state_dict();
                foreach (var (name, t) in best) sd[name].copy_(t);
                restored = true;
            }
            return new MaeFineTuneResult
            {
                StepLosses = history.StepLosses, EpochLosses = history.EpochLosses,
                ValidationAccuracies = history.ValidationAccuracies, ValidationLosses = history.ValidationLosses,
                BestEpoch = bestEpoch, BestValidationAccuracy = bestAccuracy, RestoredBestWeights = restored,
                EpochsCompleted = o.Epochs, GlobalSteps = globalStep, OptimizerSteps = optimizerSteps, StepsPerEpoch = stepsPerEpoch,
                PeakLearningRate = peakLr, ResumedFrom = resumeFrom, LastCheckpoint = lastCheckpoint, Elapsed = total.Elapsed,
            };
        }
        finally
        {
            if (best is not null) foreach (var t in best.Values) t.Dispose();
        }
    }

    static MaeFineTuneProgress Report(MaeFineTuneOptions o, int epoch, long step, long stepsPerEpoch, long globalStep, double loss,
        double lr, Stopwatch clock, Stopwatch total, long totalSteps)
    {
        double secs = clock.Elapsed.TotalSeconds;
        return new MaeFineTuneProgress
        {
            Epoch = epoch, Epochs = o.Epochs, Step = step - 1, StepsPerEpoch = stepsPerEpoch, GlobalStep = globalStep,
            Loss = loss, LearningRate = lr, ImagesPerSecond = secs > 0 ? step * (double)o.BatchSize / secs : 0,
            Eta = TimeSpan.FromSeconds(secs / step * (totalSteps - (epoch * stepsPerEpoch + step))), Elapsed = total.Elapsed,
        };
    }

    /// <summary>CPU copies of the model's state (reusing <paramref name="previous"/>'s tensors).</summary>
    static Dictionary<string, Tensor> Snapshot(VitClassifier model, Dictionary<string, Tensor>? previous)
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
        OutputSize = a.OutputSize, Channels = a.Channels, Mean = a.ResolvedMean(), Std = a.ResolvedStd(), Normalize = a.Normalize,
        RandomResizedCrop = false, HorizontalFlipProbability = 0, ClampToUnitRange = false,
    });

    /// <summary>Top-1 accuracy and mean cross entropy of <paramref name="model"/> over the whole source (eval mode).
    /// <paramref name="transform"/> maps [0, 1] pixels to model inputs (null: fed as they are); a planned source
    /// (<see cref="IMaePlannedLabeledSource"/>) gives model inputs itself, so it is not applied there.</summary>
    public static (double Accuracy, double Loss) Evaluate(VitClassifier model, IMaeLabeledImageSource source, IBatchTransform? transform,
        int batchSize = 256, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(source);
        device ??= model.head.weight.device;
        bool wasTraining = model.training;
        model.eval();
        long correct = 0, seen = 0;
        double lossSum = 0;
        try
        {
            using var noGrad = no_grad();
            var batches = source is IMaePlannedLabeledSource planned
                ? planned.Batches(new MaeEpochPlan { BatchSize = batchSize, Training = false, TargetDevice = device }.Validate())
                : source.Batches(batchSize, shuffle: false, dropLast: false);
            foreach (var (images, labels) in batches)
            {
                using var ownedImages = images;
                using var ownedLabels = labels;
                using var noGc = NoGcScope.Enter(NoGcScope.TrainingBudget); // see NoGcScope: no GC while TorchSharp temporaries are in native calls
                using var scope = NewDisposeScope();
                var x = images.to(device);
                if (transform is not null && source is not IMaePlannedLabeledSource) x = transform.Apply(x);
                var y = labels.to(device);
                var logits = model.forward(x);
                lossSum += nn.functional.cross_entropy(logits.to(float32), y, reduction: nn.Reduction.Sum).item<float>();
                correct += logits.argmax(-1).eq(y).sum().item<long>();
                seen += labels.shape[0];
            }
        }
        finally { if (wasTraining) model.train(); }
        return (seen == 0 ? 0 : (double)correct / seen, seen == 0 ? 0 : lossSum / seen);
    }

    static long CheckData(VitClassifier model, IMaeLabeledImageSource train, IMaeLabeledImageSource? validation,
        MaeAugmentationOptions augmentation, MaeFineTuneOptions o)
    {
        var config = model.Config;
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
        if (train.Count < o.BatchSize)
            throw new ArgumentException(
                $"The training source has {train.Count} images, fewer than BatchSize = {o.BatchSize}; incomplete batches are dropped, so an epoch would have no step. Lower BatchSize or add images.", nameof(train));
        long steps = train.Count / o.BatchSize;
        if (steps < o.AccumIter)
            throw new ArgumentException($"An epoch has {steps} batches but AccumIter = {o.AccumIter}: the optimizer would never step.", nameof(train));
        return steps;
    }
}

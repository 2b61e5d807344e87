using System.Diagnostics;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>
/// Pre-trains a <see cref="MaskedAutoencoder"/> with the reference recipe (facebookresearch/mae
/// <c>engine_pretrain.py</c> <c>train_one_epoch</c>): per batch, the learning rate is set at each accumulation
/// boundary from the per-iteration schedule, the MAE loss is computed on a random 75 % mask, divided by the
/// accumulation count and back-propagated, and AdamW steps every <see cref="MaePretrainOptions.AccumIter"/>
/// batches. Checkpoints allow an exact resume; progress goes to an <see cref="IProgress{T}"/>, a JSONL file and
/// optionally TensorBoard.
/// </summary>
public sealed class MaePretrainer
{
    public MaePretrainOptions Options { get; }

    public MaePretrainer(MaePretrainOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options.Clone().Validate();
    }

    /// <summary>Seeds libtorch with <see cref="MaePretrainOptions.Seed"/> and builds a model whose
    /// <c>NormPixLoss</c> follows the options, so the initial weights repeat with the seed.</summary>
    public static MaskedAutoencoder CreateModel(MaeConfig config, MaePretrainOptions options)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        config = (config with { NormPixLoss = options.NormPixLoss }).Validate();
        TorchRuntime.Seed(options.Seed);
        return new MaskedAutoencoder(config);
    }

    /// <summary>
    /// Trains <paramref name="model"/> on <paramref name="source"/> (in place; it ends on the training device).
    /// Options, data and model are checked first, so bad input throws before any step. A fresh run seeds libtorch
    /// with <see cref="MaePretrainOptions.Seed"/>; with <see cref="MaePretrainOptions.Resume"/> the latest checkpoint
    /// in <see cref="MaePretrainOptions.CheckpointDir"/> restores the weights, AdamW state, generator state and
    /// counters, and training continues with the next epoch.
    /// </summary>
    public MaePretrainResult Train(MaskedAutoencoder model, IMaeImageSource source,
        IProgress<MaePretrainProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(source);
        var o = Options;
        var config = model.Config;
        o.Validate(config);
        long stepsPerEpoch = CheckSource(source, config, o);

        var device = o.Device.Resolve();
        // On CUDA, fp32 matrix math uses TF32 tensor cores (as PyTorch's default for cuDNN convolutions and the
        // reference's Ampere runs); the CPU is unaffected.
        if (device.type == DeviceType.CUDA) TorchRuntime.AllowTf32();
        int threadsBefore = TorchRuntime.Threads;
        if (o.Threads is int threads) TorchRuntime.Threads = threads;
        try
        {
            return Run(model, source, progress, cancellationToken, o, config, stepsPerEpoch, device);
        }
        finally
        {
            if (o.Threads is not null) TorchRuntime.Threads = threadsBefore;
        }
    }

    MaePretrainResult Run(MaskedAutoencoder model, IMaeImageSource source, IProgress<MaePretrainProgress>? progress,
        CancellationToken cancellationToken, MaePretrainOptions o, MaeConfig config, long stepsPerEpoch, Device device)
    {
        string? resumeFrom = null;
        if (o.CheckpointDir is not null)
        {
            MaePretrainCheckpoint.DeleteStaleTemporaries(o.CheckpointDir);
            if (o.Resume) resumeFrom = MaePretrainCheckpoint.FindLatest(o.CheckpointDir);
        }
        using var reader = resumeFrom is null ? null : MaeCheckpointReader.Open(resumeFrom);
        if (reader is not null && reader.Header.Config != config)
            throw new InvalidOperationException(
                $"Checkpoint '{resumeFrom}' was written for a different model configuration ({reader.Header.Config}); this model is {config}.");
        if (reader is not null && reader.Header.EpochsCompleted > o.Epochs)
            throw new InvalidOperationException(
                $"Checkpoint '{resumeFrom}' has already completed {reader.Header.EpochsCompleted} epochs, more than Epochs = {o.Epochs}.");
        if (reader is null) TorchRuntime.Seed(o.Seed);

        ApplyPrecision(model, o.Precision);
        model.to(device);
        reader?.LoadModel(model);
        model.train();

        var groups = MaeWeightDecay.Split(model, o.NoWeightDecayNames);
        double peakLr = o.PeakLearningRate;
        var paramGroups = new List<AdamW.ParamGroup>
        {
            new(groups.Decay.Select(p => p.Parameter), lr: peakLr, beta1: o.Beta1, beta2: o.Beta2, eps: o.Epsilon, weight_decay: o.WeightDecay),
            new(groups.NoDecay.Select(p => p.Parameter), lr: peakLr, beta1: o.Beta1, beta2: o.Beta2, eps: o.Epsilon, weight_decay: 0.0),
        };
        using var optimizer = optim.AdamW(paramGroups, lr: peakLr, beta1: o.Beta1, beta2: o.Beta2, eps: o.Epsilon, weight_decay: o.WeightDecay);

        int startEpoch = 0;
        long globalStep = 0, optimizerSteps = 0;
        var stepLosses = new List<float>();
        var epochLosses = new List<double>();
        if (reader is not null)
        {
            reader.LoadOptimizer(optimizer);
            using (var rng = reader.ReadRngState()) torch.random.set_rng_state(rng);
            (stepLosses, epochLosses) = reader.ReadHistory();
            startEpoch = reader.Header.EpochsCompleted;
            globalStep = reader.Header.GlobalStep;
            optimizerSteps = reader.Header.OptimizerSteps;
        }

        using var metrics = o.MetricsFile is null ? null : new MaeMetricsLog(o.MetricsFile, globalStep);
        var tensorBoard = o.TensorBoardDir is null ? null : torch.utils.tensorboard.SummaryWriter(o.TensorBoardDir);

        var total = Stopwatch.StartNew();
        var planned = source as IMaePlannedImageSource;   // produces the model's input itself: no batch transform
        var transform = planned is null ? o.Transform : null;
        bool transformChecked = false;
        int accum = o.AccumIter;
        string? lastCheckpoint = null;
        long totalSteps = stepsPerEpoch * o.Epochs;

        for (int epoch = startEpoch; epoch < o.Epochs; epoch++)
        {
            // As the reference: a partial accumulation left from the last epoch is dropped. (In a scope: TorchSharp's
            // zero_grad leaves the wrapper that zero_() returns to the current scope.)
            using (NewDisposeScope()) optimizer.zero_grad();
            var epochClock = Stopwatch.StartNew();
            double epochLossSum = 0, lr = 0;
            long step = 0;
            var epochBatches = planned is null ? source.EpochBatches(o.BatchSize, shuffle: true)
                : planned.Batches(new MaeEpochPlan { Seed = o.Seed, Epoch = epoch, BatchSize = o.BatchSize, TargetDevice = device }.Validate());
            using (var batches = epochBatches.GetEnumerator())
            {
                while (true)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    using var noGc = NoGcScope.Enter(NoGcScope.TrainingBudget); // see NoGcScope: no GC while TorchSharp temporaries are in native calls
                    using var scope = NewDisposeScope();
                    if (!batches.MoveNext()) break;
                    if (step >= stepsPerEpoch)
                        throw new InvalidDataException($"The image source yielded more than the {stepsPerEpoch} batches its Count ({source.Count}) allows at batch size {o.BatchSize}.");

                    if (step % accum == 0)
                    {
                        lr = MaeLrSchedule.At(o, epoch, step, stepsPerEpoch);
                        foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
                    }

                    var images = batches.Current;
                    if (images.device_type != device.type || images.device_index != device.index) images = images.to(device);
                    if (transform is not null)
                    {
                        images = transform.Apply(images);
                        if (!transformChecked)
                        {
                            CheckTransformed(images, config, o.BatchSize);
                            transformChecked = true;
                        }
                    }

                    // The masking noise is drawn from the CPU generator, so that the checkpointed generator state
                    // covers it on every device; on the CPU the model's own draw is the same, so pass nothing.
                    Tensor? noise = device.type == DeviceType.CPU ? null : rand(images.shape[0], config.NumPatches).to(device);
                    var (loss, _, _) = model.Forward(images, o.MaskRatio, noise);
                    double lossValue = ToDouble(loss);
                    if (!double.IsFinite(lossValue))
                        throw new MaeNonFiniteLossException(epoch, step, globalStep, lossValue);

                    (accum == 1 ? loss : loss.DividedBy(accum)).backward();
                    if ((step + 1) % accum == 0)
                    {
                        optimizer.step();
                        optimizer.zero_grad();
                        optimizerSteps++;
                    }

                    stepLosses.Add((float)lossValue);
                    epochLossSum += lossValue;
                    globalStep++;
                    step++;

                    bool report = globalStep % o.LogEvery == 0 || step == stepsPerEpoch;
                    if (report && (progress is not null || metrics is not null))
                    {
                        double secs = epochClock.Elapsed.TotalSeconds;
                        double perStep = secs / step;
                        var p = new MaePretrainProgress
                        {
                            Epoch = epoch, Epochs = o.Epochs, Step = step - 1, StepsPerEpoch = stepsPerEpoch,
                            GlobalStep = globalStep, Loss = lossValue, LearningRate = lr,
                            ImagesPerSecond = secs > 0 ? step * (double)o.BatchSize / secs : 0,
                            Eta = TimeSpan.FromSeconds(perStep * (totalSteps - (epoch * stepsPerEpoch + step))),
                            Elapsed = total.Elapsed,
                        };
                        metrics?.Write(p);
                        progress?.Report(p);
                    }
                    if (tensorBoard is not null && step % accum == 0 && globalStep % o.LogEvery == 0)
                    {
                        // The reference's x axis: epoch × 1000, which lines up runs with different batch sizes.
                        int epoch1000x = (int)(((step - 1) / (double)stepsPerEpoch + epoch) * 1000);
                        tensorBoard.add_scalar("train_loss", (float)lossValue, epoch1000x);
                        tensorBoard.add_scalar("lr", (float)lr, epoch1000x);
                    }
                }
            }
            if (step != stepsPerEpoch)
                throw new InvalidDataException(
                    $"The image source yielded {step} batches in epoch {epoch}; its Count ({source.Count}) at batch size {o.BatchSize} promises {stepsPerEpoch}.");
            epochLosses.Add(epochLossSum / step);

            if (o.CheckpointDir is not null && ((epoch + 1) % o.CheckpointEvery == 0 || epoch + 1 == o.Epochs))
            {
                var header = new MaeCheckpointHeader
                {
                    EpochsCompleted = epoch + 1, GlobalStep = globalStep, OptimizerSteps = optimizerSteps,
                    StepsPerEpoch = stepsPerEpoch, Config = config, Options = o, SavedUtc = DateTime.UtcNow,
                };
                lastCheckpoint = MaePretrainCheckpoint.PathFor(o.CheckpointDir, epoch + 1);
                MaePretrainCheckpoint.Save(lastCheckpoint, header, model, optimizer, stepLosses, epochLosses);
            }
        }

        return new MaePretrainResult
        {
            StepLosses = stepLosses, EpochLosses = epochLosses, EpochsCompleted = o.Epochs, GlobalSteps = globalStep,
            OptimizerSteps = optimizerSteps, StepsPerEpoch = stepsPerEpoch, PeakLearningRate = peakLr,
            ResumedFrom = resumeFrom, LastCheckpoint = lastCheckpoint, Elapsed = total.Elapsed,
        };
    }

    /// <summary>
    /// THE place where the precision option reaches the model.
    /// </summary>
    static void ApplyPrecision(MaskedAutoencoder model, MaePrecision precision)
    {
        model.ComputeDType = precision == MaePrecision.Bf16 ? ScalarType.BFloat16 : null;

    }

    static double ToDouble(Tensor loss)
    {
        if (loss.dtype == ScalarType.Float32) return loss.item<float>();
        if (loss.dtype == ScalarType.Float64) return loss.item<double>();
        using var f = loss.to_type(ScalarType.Float32);
        return f.item<float>();
    }

    /// <summary>Checks the data against the options and the model before any step; returns batches per epoch.</summary>
    static long CheckSource(IMaeImageSource source, MaeConfig config, MaePretrainOptions o)
    {
        long count = source.Count;
        if (count < 1) throw new ArgumentException($"The image source is empty (Count = {count}): pre-training needs images.", nameof(source));
        var shape = source.Shape;
        shape.Validate(nameof(source));
        if (source is IMaePlannedImageSource && o.Transform is not null)
            throw new ArgumentException(
                "The image source crops, flips and normalises the images itself (an IMaePlannedImageSource), and the options also set a batch Transform; set Transform = null (the source's own augmentation options apply).", nameof(source));
        var expected = new MaeImageShape(config.InChannels, config.ImageSize, config.ImageSize);
        MaeImageShape? produced = o.Transform is null ? shape : o.Transform.OutputShape(shape);
        if (produced is MaeImageShape s && s != expected)
            throw new ArgumentException(
                $"The model expects images of {expected} but the " + (o.Transform is null ? $"image source holds {s}" : $"transform turns the source's {shape} into {s}") +
                ". Resize the images (or set a transform that crops/resizes to the model size), or build the model for this size.", nameof(source));
        if (count < o.BatchSize)
            throw new ArgumentException(
                $"The image source has {count} images, fewer than BatchSize = {o.BatchSize}; incomplete batches are dropped, so an epoch would have no step. Lower BatchSize or add images.", nameof(source));
        long steps = count / o.BatchSize;
        if (steps < o.AccumIter)
            throw new ArgumentException(
                $"An epoch has {steps} batches ({count} images / BatchSize {o.BatchSize}) but AccumIter = {o.AccumIter}: the optimizer would never step. Lower AccumIter or BatchSize.", nameof(source));
        return steps;
    }

    static void CheckTransformed(Tensor images, MaeConfig config, int batch)
    {
        var expected = new long[] { batch, config.InChannels, config.ImageSize, config.ImageSize };
        if (!images.shape.SequenceEqual(expected) || !images.is_floating_point())
            throw new InvalidOperationException(
                $"The batch transform returned [{string.Join(", ", images.shape)}] ({images.dtype}); the model needs float images [{string.Join(", ", expected)}].");
    }
}

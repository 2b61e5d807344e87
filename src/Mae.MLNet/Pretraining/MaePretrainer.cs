using System.Diagnostics;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using Mae.MLNet.Evaluation;
using Mae.MLNet.FineTuning;
using Mae.MLNet.Input;
using Mae.MLNet.Training;
using static TorchSharp.torch;

namespace Mae.MLNet.Pretraining;

/// <summary>
/// Pre-trains a <see cref="MaskedAutoencoder"/> with the reference recipe (facebookresearch/mae
/// <c>engine_pretrain.py</c> <c>train_one_epoch</c>): per batch, the learning rate is set at each accumulation
/// boundary from the per-iteration schedule, the MAE loss is computed on a random 75 % mask, divided by the
/// accumulation count and back-propagated, and AdamW steps every <see cref="Training.MaeTrainingOptions.AccumIter"/>
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

    /// <summary>Seeds libtorch with <see cref="Training.MaeTrainingOptions.Seed"/> and builds a model of
    /// <paramref name="config"/> (its <c>NormPixLoss</c> chooses the loss target), so the initial weights repeat with the seed.</summary>
    public static MaskedAutoencoder CreateModel(MaeConfig config, MaePretrainOptions options)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        config.Validate();
        TorchRuntime.Seed(options.Seed);
        return new MaskedAutoencoder(config);
    }

    /// <summary>
    /// For a time box (<see cref="MaeTimeBudget.Plan"/>): measures pre-training's time per step: a throw-away model of <paramref name="config"/> trains
    /// <paramref name="skip"/> + <paramref name="steps"/> steps on <paramref name="source"/> with
    /// <paramref name="options"/>' batch, precision, device and threads (no checkpoints, metrics or monitor), and is
    /// stopped there. Same input path and step as the real run, so the plan includes the decoding.
    /// </summary>
    // RS0026: the two overloads differ in their first parameter's type (the model's config), so the optional ones cannot make a call ambiguous.
#pragma warning disable RS0026
    public static double CalibrateStepSeconds(MaeConfig config, MaePretrainOptions options, IMaeImageSource source, int steps = 8, int skip = 2,
        CancellationToken cancellationToken = default)
#pragma warning restore RS0026
        => Calibrate(o => PretrainNet.Of(CreateModel(config, o)), options, source, steps, skip, cancellationToken);

    /// <summary>For a time box: FCMAE pre-training's time per step, measured as
    /// <see cref="CalibrateStepSeconds(MaeConfig, MaePretrainOptions, IMaeImageSource, int, int, CancellationToken)"/> measures the ViT's
    /// (a throw-away FCMAE of <paramref name="config"/>, the same input path and step).</summary>
#pragma warning disable RS0026
    public static double CalibrateStepSeconds(ConvNextV2Config config, MaePretrainOptions options, IMaeImageSource source, int steps = 8, int skip = 2,
        CancellationToken cancellationToken = default)
#pragma warning restore RS0026
        => Calibrate(o => PretrainNet.Of(CreateModel(config, o)), options, source, steps, skip, cancellationToken);

    /// <summary>The one calibration: <paramref name="create"/> builds the throw-away model from the run's options.</summary>
    static double Calibrate(Func<MaePretrainOptions, PretrainNet> create, MaePretrainOptions options, IMaeImageSource source, int steps, int skip,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(source);
        if (steps < 1) throw new ArgumentOutOfRangeException(nameof(steps), steps, $"steps must be ≥ 1; got {steps}.");
        var o = options.Clone();
        long stepsPerEpoch = Math.Max(1, source.Count / o.BatchSize);
        o.Epochs = (int)Math.Max(1, (steps + skip + stepsPerEpoch) / stepsPerEpoch);
        o.WarmupEpochs = 0;
        o.CheckpointDir = null; o.Resume = false; o.RequireResume = false; o.MetricsFile = null; o.TensorBoardDir = null; o.KnnMonitor = null; o.LogEvery = 1; o.TimePlan = null;
        var timer = new MaeTimeBudget.StepTimer(steps + skip);
        var net = create(o);
        using var model = net.Module;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timer.Full += stop.Cancel;
        try { new MaePretrainer(o).Train(net, source, timer, stop.Token); }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested) { }
        return MaeTimeBudget.SecondsPerStep(timer.Times, skip);
    }

    /// <summary>
    /// Trains <paramref name="model"/> on <paramref name="source"/> (in place; it ends on the training device).
    /// Options, data and model are checked first, so bad input throws before any step. A fresh run seeds libtorch
    /// with <see cref="Training.MaeTrainingOptions.Seed"/>; with <see cref="Training.MaeTrainingOptions.Resume"/> the latest checkpoint
    /// in <see cref="Training.MaeTrainingOptions.CheckpointDir"/> restores the weights, AdamW state, generator state and
    /// counters, and training continues with the next epoch — or, from a checkpoint a cancelled run wrote inside an
    /// epoch, at the batch it stopped before (every source makes its batches from a <see cref="MaeEpochPlan"/>, which can
    /// start at any batch). Cancelling a run with checkpoints on finishes the step (and accumulation) in progress, writes that
    /// checkpoint and throws <see cref="OperationCanceledException"/> naming it.
    /// </summary>
    public MaePretrainResult Train(MaskedAutoencoder model, IMaeImageSource source,
        IProgress<MaePretrainProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(source);
        Options.Validate(model.Config);
        return Train(PretrainNet.Of(model), source, progress, cancellationToken);
    }

    /// <summary>Seeds libtorch with <see cref="Training.MaeTrainingOptions.Seed"/> and builds an FCMAE of
    /// <paramref name="config"/> (ConvNeXt V2 pre-training), so the initial weights repeat with the seed.</summary>
    public static Fcmae CreateModel(ConvNextV2Config config, MaePretrainOptions options)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate(config);
        TorchRuntime.Seed(options.Seed);
        return new Fcmae(config);
    }

    /// <summary>
    /// Pre-trains ConvNeXt V2's FCMAE on <paramref name="source"/> with the same engine, options, checkpoints (exact
    /// resume) and progress as the ViT MAE (<see cref="Train(MaskedAutoencoder, IMaeImageSource, IProgress{MaePretrainProgress}?, CancellationToken)"/>);
    /// <see cref="MaePretrainOptions.MaskRatio"/> is the share of last-stage cells removed (the official default is 0.6).
    /// The contrastive objective and the kNN monitor are ViT-only and refused here.
    /// </summary>
    // RS0026: the two Train overloads differ in their first parameter's type (the model), so their optional
    // parameters cannot make a call ambiguous.
#pragma warning disable RS0026
    public MaePretrainResult Train(Fcmae model, IMaeImageSource source,
        IProgress<MaePretrainProgress>? progress = null, CancellationToken cancellationToken = default)
#pragma warning restore RS0026
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(source);
        Options.Validate(model.Config);
        return Train(PretrainNet.Of(model), source, progress, cancellationToken);
    }

    MaePretrainResult Train(PretrainNet net, IMaeImageSource source, IProgress<MaePretrainProgress>? progress, CancellationToken cancellationToken)
    {
        var o = Options;
        long stepsPerEpoch = CheckSource(source, net.Input, o);

        var device = Training.MaeCollective.TrainingDevice(o.Device, o.Collective); // data-parallel: one GPU per rank
        // On CUDA, fp32 matrix math uses TF32 tensor cores (as PyTorch's default for cuDNN convolutions and the
        // reference's Ampere runs); the CPU is unaffected. Both settings are the caller's again afterwards.
        using var settings = new TorchSettingsScope(o.Threads, allowTf32: device.type == DeviceType.CUDA);
        var task = new PretrainTask(net, source, o, progress);
        var state = MaeTrainingEngine.Run(task, o.EngineSettings(device.type), stepsPerEpoch, device, cancellationToken);
        return MaeTrainingResult.From<MaePretrainResult>(state, stepsPerEpoch, o.PeakLearningRate) with { KnnResults = task.KnnResults };
    }

    /// <summary>Pre-training's hooks: the MAE loss of a batch (random 75 % mask), the decay / no-decay groups.</summary>
    sealed class PretrainTask : MaeTrainingTask<Tensor>
    {
        readonly PretrainNet net;
        readonly MaskedAutoencoder? model;   // the ViT MAE (contrastive objective, kNN monitor), or null for FCMAE
        readonly IMaeImageSource source;
        readonly IBatchTransform? transform;
        readonly MaePretrainOptions o;
        readonly IProgress<MaePretrainProgress>? progress;
        bool transformChecked;
        ContrastiveMae? contrastive;   // Objective = Contrastive: the MAE with a projection head (made in PrepareModel)
        // Data-parallel: where the current batch sits in the epoch (its masking noise is keyed by global position).
        int batchEpoch;
        long[]? batchPositions;

        public PretrainTask(PretrainNet net, IMaeImageSource source, MaePretrainOptions o, IProgress<MaePretrainProgress>? progress)
        {
            this.net = net;
            model = net.Module as MaskedAutoencoder;
            this.source = source;
            transform = source is IMaeModelInputSource ? null : o.Transform; // a source that makes model input: no batch transform
            this.o = o;
            this.progress = progress;
        }

        public override nn.Module Model => net.Module;
        public override string DataDescription => $"image source (Count {source.Count})";
        public override string LossTag => "train_loss";
        public override MaeTrainingCheckpoint Checkpoint => MaePretrainCheckpoint.Training;

        public override void PrepareModel(ScalarType? computeDType)
        {
            net.ComputeDType = computeDType;
            // After the engine seeded a fresh run, so the projector's initial weights repeat with the seed.
            if (o.Objective == MaeObjective.Contrastive)
                contrastive = new ContrastiveMae(model!, o.ContrastiveWeight, o.ContrastiveTemperature, o.ProjectionDim);
        }

        public override IReadOnlyList<MaeParamGroup> ParamGroups()
        {
            var groups = MaeWeightDecay.Split(net.Module, o.DecayTokens ? Array.Empty<string>() : net.NoWeightDecay());
            var decay = groups.Decay.ToList();
            var noDecay = groups.NoDecay.ToList();
            if (contrastive is not null)
            {
                // The projector trains with the model (same decay rule: matrices decayed, biases not).
                var device = net.Module.parameters().First().device;
                contrastive.Projector.to(device);
                var head = MaeWeightDecay.Split(contrastive.Projector, contrastive.Projector.NoWeightDecay());
                decay.AddRange(head.Decay.Select(p => ("projector." + p.Name, p.Parameter)));
                noDecay.AddRange(head.NoDecay.Select(p => ("projector." + p.Name, p.Parameter)));
            }
            return new[]
            {
                new MaeParamGroup("decay", 1.0, o.WeightDecay, decay),
                new MaeParamGroup("no_decay", 1.0, 0.0, noDecay),
            };
        }

        // Every source makes its batches from the plan, so a resume can start anywhere in an epoch.
        public override bool CanSkipBatches => true;

        /// <summary>The epoch's plan; data-parallel: this rank's part (<see cref="MaeDataShard"/>), whose global positions
        /// key the masking noise.</summary>
        public override IEnumerable<Tensor> Batches(int epoch, Device device, long skipBatches)
        {
            var plan = new MaeEpochPlan { Seed = o.Seed, Epoch = epoch, BatchSize = o.BatchSize, SkipBatches = skipBatches, TargetDevice = device };
            if (o.Collective is not { } c) return source.Batches(plan.Validate());
            plan = plan with { BatchSize = MaeDataShard.RankBatch(o.BatchSize, c.WorldSize), Rank = c.Rank, WorldSize = c.WorldSize };
            return ShardBatches(plan.Validate());
        }

        IEnumerable<Tensor> ShardBatches(MaeEpochPlan plan)
        {
            batchEpoch = plan.Epoch;
            using var at = MaeDataShard.Positions(source.Count, plan.BatchSize, plan.Rank, plan.WorldSize, plan.SkipBatches).GetEnumerator();
            foreach (var batch in source.Batches(plan))
            {
                batchPositions = at.MoveNext() ? at.Current : null;
                yield return batch;
            }
        }

        public override Tensor Loss(Tensor batch, Device device)
        {
            var images = MaeTrainingEngine.ToDevice(batch, device);
            if (contrastive is not null)
            {
                // Two views: the transform's random crops and flips drawn twice (a source that makes model input hands over one
                // augmented view, which the two masks then split), each masked independently.
                var view1 = View(images);
                var view2 = transform is null ? images : View(images);
                return contrastive!.Forward(view1, view2, o.MaskRatio, Noise(view1, device), Noise(view2, device, view: 1)).Loss;
            }
            images = View(images);
            return net.Loss(images, o.MaskRatio, Noise(images, device));
        }

        /// <summary>The batch through the transform (when there is one), checked once.</summary>
        Tensor View(Tensor images)
        {
            if (transform is null) return images;
            images = transform.Apply(images);
            if (!transformChecked)
            {
                CheckTransformed(images, net.Input, o.BatchSize);
                transformChecked = true;
            }
            return images;
        }

        /// <summary>The masking noise is drawn from the CPU generator, so that the checkpointed generator state covers it
        /// on every device; on the CPU the model's own draw is the same, so nothing is passed. Data-parallel: keyed by
        /// the images' global positions (and the view), so W ranks draw what one process would.</summary>
        Tensor? Noise(Tensor images, Device device, int view = 0)
            => o.Collective is not null ? MaeTrainingEngine.ToDevice(PlanNoise(images.shape[0], view), device)
             : device.type == DeviceType.CPU ? null : MaeTrainingEngine.ToDevice(rand(images.shape[0], net.NumPatches), device);

        Tensor PlanNoise(long batch, int view)
        {
            if (batchPositions is null || batchPositions.Length != batch)
                throw new InvalidDataException($"The {DataDescription} yielded a batch of {batch} images where this rank's shard has {batchPositions?.Length ?? 0} left.");
            int l = net.NumPatches;
            long seed = unchecked(o.Seed + view * (long)0x9E3779B97F4A7C15UL);   // the second view's masks from their own stream
            return tensor(MaePlanRandom.MaskNoise(seed, batchEpoch, batchPositions, l), new long[] { batch, l });
        }

        // The projector's weights travel as checkpoint extras (the model section holds the MAE's official names only).
        public override void WriteExtras(BinaryWriter w)
        {
            if (contrastive is null) return;
            foreach (var (_, t) in contrastive.Projector.state_dict()) t.detach().cpu().Save(w);
        }

        public override void ReadExtras(BinaryReader r, int formatVersion)
        {
            if (contrastive is null) return;
            using var noGrad = no_grad();
            foreach (var (name, t) in contrastive.Projector.state_dict())
            {
                using var saved = CheckpointFile.ReadTensor(r, $"the projector's '{name}'", t.numel() * t.element_size());
                if (!saved.shape.SequenceEqual(t.shape))
                    throw CheckpointFile.Invalid(((FileStream)r.BaseStream).Name, $"the projector's '{name}' is [{string.Join(", ", saved.shape)}], expected [{string.Join(", ", t.shape)}]");
                t.copy_(saved);   // in place: the parameters are views of the engine's flat buffer
            }
        }

        public override void Release(Tensor batch) { } // created inside the step's dispose scope

        public override void Report(MaeStepReport r) => progress?.Report(Progress(r));

        static MaePretrainProgress Progress(MaeStepReport r) => MaeTrainingProgress.From<MaePretrainProgress>(r);

        public List<(int Epoch, Evaluation.MaeKnnProbe.Result Result)> KnnResults { get; } = new();

        public override void EndOfEpoch(int epoch, MaeTrainingState state, MaeStepReport report, Action<string, double, int>? tensorBoard)
        {
            if (o.KnnMonitor is not { } knn || !knn.RunsAfter(epoch, state.Epochs) || !state.IsLead) return;
            // The monitor's images are [0, 1] pixels: normalised like the training batches, without the random crop.
            var evalTransform = o.Transform is MaePretrainAugmentation a ? FineTuning.MaeFineTuner.EvaluationTransform(a.Options) : null;
            var result = knn.Evaluate(model!.Encoder, evalTransform, model.parameters().First().device);
            KnnResults.Add((epoch, result));
            foreach (var (k, accuracy) in result.AccuracyByK) tensorBoard?.Invoke($"knn/top1_k{k}", accuracy * 100, epoch);
            progress?.Report(Progress(report) with { EndOfEpoch = true, Knn = result });
        }

        public override void CheckResume(string path, MaeTrainingCheckpointHeader header, long stepsPerEpoch, int epochs)
        {
            if (header is MaePretrainCheckpointHeader h && (h.Options.Objective != o.Objective || (o.Objective == MaeObjective.Contrastive && h.Options.ProjectionDim != o.ProjectionDim)))
                throw new InvalidOperationException(
                    $"Checkpoint '{path}' was written with the {h.Options.Objective} objective (projection {h.Options.ProjectionDim}); this run uses {o.Objective} (projection {o.ProjectionDim}).");
            if (net.Mismatch(header) is { } written)
                throw new InvalidOperationException(
                    $"Checkpoint '{path}' was written for a different model configuration ({written}); this model is {net.Describe()}.");
            if (header.EpochsCompleted > epochs)
                throw new InvalidOperationException(
                    $"Checkpoint '{path}' has already completed {header.EpochsCompleted} epochs, more than Epochs = {epochs}.");
            // Another batch size or data would resume at a position the checkpoint's counters cannot describe (and the
            // checkpoint written next would be refused as inconsistent). The world size may change: BatchSize is the
            // global batch, so the steps per epoch do not depend on it.
            if (header.StepsPerEpoch != stepsPerEpoch)
                throw new InvalidOperationException(
                    $"Checkpoint '{path}' was written with {header.StepsPerEpoch} steps per epoch (batch size {(header as MaePretrainCheckpointHeader)?.Options.BatchSize}); " +
                    $"this data and batch size ({o.BatchSize}) give {stepsPerEpoch}. Resume with the batch size and images of the run that wrote it.");
        }

        public override MaeTrainingCheckpointHeader CreateHeader(MaeTrainingState state, int epochsCompleted) => net.Describe(new MaePretrainCheckpointHeader
        {
            EpochsCompleted = epochsCompleted, GlobalStep = state.GlobalStep, OptimizerSteps = state.OptimizerSteps,
            StepsPerEpoch = state.StepsPerEpoch, Options = o, SavedUtc = DateTime.UtcNow,
        });
    }

    /// <summary>Checks the data against the options and the model before any step; returns batches per epoch.</summary>
    static long CheckSource(IMaeImageSource source, MaeImageShape expected, MaePretrainOptions o)
    {
        long count = source.Count;
        if (count < 1) throw new ArgumentException($"The image source is empty (Count = {count}): pre-training needs images.", nameof(source));
        var shape = source.Shape;
        shape.Validate(nameof(source));
        if (source is IMaeModelInputSource && o.Transform is not null)
            throw new ArgumentException(
                $"The image source ({source.GetType().Name}) crops, flips and normalises the images itself, and the options also set a batch Transform; set Transform = null (the source's own augmentation options apply).", nameof(source));
        MaeImageShape? produced = o.Transform is null ? shape : o.Transform.OutputShape(shape);
        if (produced is MaeImageShape s && s != expected)
            throw new ArgumentException(
                $"The model expects images of {expected} but the " + (o.Transform is null ? $"image source holds {s}" : $"transform turns the source's {shape} into {s}") +
                ". Resize the images (or set a transform that crops/resizes to the model size), or build the model for this size.", nameof(source));
        if (o.Collective is { } c) return CheckShards(source, o, c);
        if (count < o.BatchSize)
            throw new ArgumentException(
                $"The image source has {count} images, fewer than BatchSize = {o.BatchSize}; incomplete batches are dropped, so an epoch would have no step. Lower BatchSize or add images.", nameof(source));
        long steps = count / o.BatchSize;
        if (steps < o.AccumIter)
            throw new ArgumentException(
                $"An epoch has {steps} batches ({count} images / BatchSize {o.BatchSize}) but AccumIter = {o.AccumIter}: the optimizer would never step. Lower AccumIter or BatchSize.", nameof(source));
        return steps;
    }

    /// <summary>Data-parallel: the source must shard (<see cref="MaeDataShard"/>) and each rank needs whole steps.</summary>
    static long CheckShards(IMaeImageSource source, MaePretrainOptions o, Training.IMaeCollective c)
    {
        if (!source.ReadsShards && c.WorldSize > 1)
            throw new ArgumentException(
                $"Data-parallel pre-training needs a source each rank can read its shard of (ReadsShards: MaeImageSource, MaeImageFileSource); got {source.GetType().Name}.", nameof(source));
        int b = MaeDataShard.RankBatch(o.BatchSize, c.WorldSize);
        long steps = MaeDataShard.StepsPerEpoch(source.Count, o.BatchSize, c.WorldSize);
        if (steps < Math.Max(1, o.AccumIter))
            throw new ArgumentException(
                $"Each of the {c.WorldSize} ranks reads {(source.Count + c.WorldSize - 1) / c.WorldSize} of the {source.Count} images in batches of {b} (BatchSize {o.BatchSize} / {c.WorldSize}): " +
                $"{steps} steps per epoch, fewer than AccumIter = {o.AccumIter} (or none). Lower BatchSize or AccumIter, or add images.", nameof(source));
        return steps;
    }

    static void CheckTransformed(Tensor images, MaeImageShape shape, int batch)
    {
        var expected = new long[] { batch, shape.Channels, shape.Height, shape.Width };
        if (!images.shape.SequenceEqual(expected) || !images.is_floating_point())
            throw new InvalidOperationException(
                $"The batch transform returned [{string.Join(", ", images.shape)}] ({images.dtype}); the model needs float images [{string.Join(", ", expected)}].");
    }
}

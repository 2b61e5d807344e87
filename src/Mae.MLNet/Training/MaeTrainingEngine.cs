using System.Diagnostics;
using Mae.MLNet.Input;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>
/// The training loop shared by pre-training and fine-tuning (the reference's <c>train_one_epoch</c> of
/// <c>engine_pretrain.py</c> / <c>engine_finetune.py</c> around one <see cref="MaeTrainingTask{TBatch}"/>): resume from
/// the latest checkpoint, the trainable parameters in one flat buffer with a whole-buffer AdamW
/// (<see cref="MaeFlatParameters"/>, <see cref="MaeFlatAdamW"/>), per batch the lr set at each accumulation boundary
/// from the per-iteration schedule, the loss divided by the accumulation count and back-propagated, optional
/// gradient clipping and an AdamW step every <c>AccumIter</c> batches; progress, JSONL and TensorBoard every
/// <c>LogEvery</c> steps; checkpoints every <c>CheckpointEvery</c> epochs.
/// The loss is not read back per step: each step's loss is copied into a small device buffer that is read when
/// reporting (every <c>LogEvery</c> steps and at the end of each epoch, before any checkpoint), where a NaN or
/// infinite loss stops the run with <see cref="MaeNonFiniteLossException"/> naming the step it happened at.
/// <para>Cancellation is checked before each step (data-parallel: agreed by all ranks at each accumulation boundary,
/// so a signal to any rank stops them all at the same step). When the task's data can start inside an epoch
/// (<see cref="MaeTrainingTask{TBatch}.CanSkipBatches"/>: pre-training and fine-tuning, whose sources follow the epoch plan) and checkpoints
/// are on, the run goes on to the next accumulation boundary, writes (rank 0) a checkpoint of that position
/// (<c>…NNNN-SSSSSS</c>: epochs completed, steps into the next) and then throws <see cref="OperationCanceledException"/>;
/// a resume starts that epoch at that batch and continues exactly as the uninterrupted run. Otherwise cancellation
/// throws at once, as before.</para>
/// </summary>
internal static class MaeTrainingEngine
{
    /// <summary>
    /// Runs the task. Data-parallel (a collective of more than one rank): a failure on one rank alone — a bad image, a
    /// full disk, any exception the other ranks do not share — is written to stderr and ends every rank at once
    /// (<see cref="IMaeCollective.Abort"/>, <c>MPI_Abort</c>), because the others would otherwise wait for it in the next
    /// collective until the watchdog's timeout. Outcomes every rank reaches together — the agreed stop, a non-finite
    /// (all-reduced) loss — are thrown normally on every rank.
    /// </summary>
    public static MaeTrainingState Run<TBatch>(MaeTrainingTask<TBatch> task, MaeEngineSettings s, long stepsPerEpoch, Device device,
        CancellationToken cancellationToken)
    {
        try { return RunRanks(task, s, stepsPerEpoch, device, cancellationToken); }
        catch (Exception e) when (s.Collective is { WorldSize: > 1 } c && !IsAgreed(e))
        {
            c.Abort($"training failed on this rank; ending every rank of the job. {e}");
            throw;
        }
    }

    const string AgreedKey = "Mae.MLNet.AgreedByAllRanks";

    /// <summary>Marks an exception every rank throws at the same point (no rank is left waiting in a collective).</summary>
    static T Agreed<T>(T e) where T : Exception
    {
        e.Data[AgreedKey] = true;
        return e;
    }

    static bool IsAgreed(Exception e) => e.Data.Contains(AgreedKey);

    /// <summary>Whether any rank asks to stop (its token cancelled: Ctrl+C, SIGTERM): one all-reduce of a 0/1 flag at each
    /// accumulation boundary, so all ranks stop at the same step.</summary>
    static bool AnyRankStops(IMaeCollective collective, bool mine)
    {
        using var flag = tensor(new[] { mine ? 1f : 0f });
        collective.AllReduceMean(flag);
        return flag.item<float>() > 0;
    }

    static MaeTrainingState RunRanks<TBatch>(MaeTrainingTask<TBatch> task, MaeEngineSettings s, long stepsPerEpoch, Device device,
        CancellationToken cancellationToken)
    {
        var model = task.Model;
        var checkpoint = task.Checkpoint;
        var collective = s.Collective;
        var state = new MaeTrainingState { StepsPerEpoch = stepsPerEpoch, IsLead = collective is null || collective.Rank == 0 };
        // The lead holds the folder's lock for the whole run: a second run on the folder is refused, and the
        // temporaries deleted below cannot belong to a live run (only a lock holder writes them).
        using var folderLock = s.CheckpointDir is not null && state.IsLead ? MaeRunFolderLock.Acquire(s.CheckpointDir) : null;
        if (s.CheckpointDir is not null)
        {
            // Data-parallel: rank 0 owns the folder; every rank resumes from the same file (checked).
            if (state.IsLead) checkpoint.Container.DeleteStaleTemporaries(s.CheckpointDir);
            collective?.Barrier();
            if (s.Resume) state.ResumedFrom = checkpoint.Container.FindLatest(s.CheckpointDir);
            if (collective is not null) MaeDataParallel.CheckSameResume(collective, state.ResumedFrom, s.CheckpointDir);
            if (s.RequireResume && state.ResumedFrom is null)   // every rank saw the same (checked above): all refuse together
                throw MaeRunFolderException.NothingToResume(s.CheckpointDir);
        }
        using var reader = state.ResumedFrom is null ? null : checkpoint.Open(state.ResumedFrom);
        // A time-boxed run's checkpoints carry its re-fitted schedule, which a resume continues (and keeps writing).
        var plan = reader?.Header.Schedule ?? new MaeLrPlan { Epochs = s.Epochs, WarmupEpochs = s.WarmupEpochs };
        bool storePlan = s.TimeBox is not null || reader?.Header.Schedule is not null;
        if (reader is not null) task.CheckResume(reader.Path, reader.Header, stepsPerEpoch, plan.Epochs);
        else TorchRuntime.Seed(s.Seed);

        long skip = reader is null ? 0 : StepsIntoEpoch(task, reader, stepsPerEpoch);

        task.PrepareModel(s.ComputeDType);
        model.to(device);
        reader?.LoadModel(model);
        model.train();

        using var step = MaeTrainStep.Create(task.ParamGroups(), s);
        if (reader is not null)
        {
            step.LoadOptimizer(reader);
            using (var rng = reader.ReadRngState()) torch.random.set_rng_state(rng);
            (state.StepLosses, state.EpochLosses) = reader.ReadHistory();
            task.ReadExtras(reader.Reader, reader.FormatVersion);
            reader.CheckUnchanged();
            state.StartEpoch = reader.Header.EpochsCompleted;
            state.GlobalStep = reader.Header.GlobalStep;
            state.OptimizerSteps = reader.Header.OptimizerSteps;
        }
        if (collective is not null) step.BroadcastWeights(collective);
        // Data-parallel over MPI: each optimizer step's last micro-batch all-reduces its gradients while backward runs
        // (OverlapPlan; bit for bit the sums of the one all-reduce after backward).
        var overlap = collective is MaeMpiCollective { WorldSize: > 1 } && s.OverlapGroups > 1 ? step.PlanOverlap(model, s.OverlapGroups) : null;
        using var reducer = overlap is null ? null : new BackgroundReducer();

        using var metrics = s.MetricsFile is null || !state.IsLead ? null : new MaeMetricsLog(s.MetricsFile, state.GlobalStep);
        var tensorBoard = s.TensorBoardDir is null || !state.IsLead ? null : torch.utils.tensorboard.SummaryWriter(s.TensorBoardDir);
        Action<string, double, int>? scalar = tensorBoard is null ? null : (tag, value, x) => tensorBoard.add_scalar(tag, (float)value, x);

        var total = Stopwatch.StartNew();
        int accum = s.AccumIter;
        var lapStart = s.TimeBox?.Clock();
        var paces = new List<double>();   // seconds per epoch, each epoch's, in this process
        using var losses = new PendingLosses(Math.Max(1, (int)Math.Min(s.LogEvery, stepsPerEpoch)), device, s.LegacyStep, collective);
        var allReduceClock = new Stopwatch();
        long checkpointedStep = state.GlobalStep;   // nothing to write when stopped exactly where the last file was
        bool canStopWithCheckpoint = s.CheckpointDir is not null && task.CanSkipBatches;
        bool multiRank = collective is { WorldSize: > 1 };

        for (int epoch = state.StartEpoch; epoch < plan.Epochs; epoch++)
        {
            model.train();
            // As the reference: a partial accumulation left from the last epoch is dropped.
            step.ZeroGrad();
            var clock = Stopwatch.StartNew();
            double lr = 0;
            long firstStep = epoch == state.StartEpoch ? skip : 0, stepInEpoch = firstStep;
            MaeStepReport last = default;
            using (var batches = task.Batches(epoch, device, firstStep).GetEnumerator())
            {
                while (true)
                {
                    // Several ranks agree on the stop at each accumulation boundary (one tiny all-reduce), so a signal to
                    // any one rank stops all of them at the same step; one process looks at its token before every step.
                    bool atBoundary = stepInEpoch % accum == 0;
                    // After the epoch's last step the stop waits for the epoch's end and is looked at again before the
                    // next epoch's first step: a position file here would say "NNNN epochs + a whole epoch of steps",
                    // which no resume can read. Every rank skips this look alike, so the agreement stays in step.
                    bool epochDone = stepInEpoch >= stepsPerEpoch;
                    if (!epochDone && (multiRank ? atBoundary && AnyRankStops(collective!, cancellationToken.IsCancellationRequested) : cancellationToken.IsCancellationRequested))
                    {
                        if (!canStopWithCheckpoint) throw Agreed(new OperationCanceledException(cancellationToken.IsCancellationRequested ? cancellationToken : CancellationToken.None));
                        if (atBoundary) // else one more step: a partial accumulation is not stored
                        {
                            losses.Flush(state.StepLosses);
                            string? written = null;
                            if (state.GlobalStep != checkpointedStep)
                            {
                                written = state.LastCheckpoint = checkpoint.Container.PathFor(s.CheckpointDir!, epoch, stepInEpoch);
                                if (state.IsLead) checkpoint.Save(written, Header(epoch), model, step.Optimizer(), state.StepLosses, state.EpochLosses, task.WriteExtras);
                                collective?.Barrier(); // the file is complete before any rank ends
                            }
                            throw Agreed(new OperationCanceledException(
                                $"Training stopped at epoch {epoch}, step {stepInEpoch} of {stepsPerEpoch}" +
                                (written is null ? $"; the latest checkpoint in '{s.CheckpointDir}' holds this position." : $"; checkpoint written: '{written}'."),
                                cancellationToken.IsCancellationRequested ? cancellationToken : CancellationToken.None));
                        }
                    }
                    using var scope = NewDisposeScope();
                    if (!batches.MoveNext()) break;
                    var batch = batches.Current;
                    try
                    {
                        if (stepInEpoch >= stepsPerEpoch)
                            throw new InvalidDataException($"The {task.DataDescription} yielded more than the {stepsPerEpoch} batches it promises per epoch at batch size {s.BatchSize}.");
                        if (stepInEpoch % accum == 0) lr = plan.At(stepInEpoch / (double)stepsPerEpoch + epoch, s.PeakLearningRate, s.MinLearningRate);

                        // Data-parallel (any world size, one included): libtorch's generator restarts for each micro-batch from
                        // its place in the epoch, so augmentation, mixup and drop path draw what one process accumulating
                        // the ranks' batches draws, and no two ranks (no two micro-batches) repeat a stream.
                        if (collective is not null) TorchRuntime.Seed(MaePlanRandom.MicroBatchSeed(s.Seed, epoch, MaeDataShard.MicroBatch(stepInEpoch, collective.Rank, collective.WorldSize)));
                        bool lastMicroBatch = (stepInEpoch + 1) % accum == 0;
                        bool overlapped = lastMicroBatch && overlap is not null && (s.OverlapAt?.Invoke(state.GlobalStep) ?? true);
                        Tensor loss;
                        using (MaeInputs.DeferValueChecksOnDevice())
                        using (step.CastForStep())
                        using (overlapped ? overlap!.Cuts.Recording() : null) loss = task.Loss(batch, device);
                        losses.Add(loss, epoch, stepInEpoch, state.GlobalStep);
                        var scaled = accum == 1 ? loss : loss.DividedBy(accum);
                        if (overlapped) step.BackwardReducing(scaled, overlap!, collective!, reducer!, allReduceClock);
                        else step.Backward(scaled);
                        if (lastMicroBatch)
                        {
                            if (collective is not null && !overlapped)
                            {
                                allReduceClock.Start();
                                step.ReduceGradients(collective);
                                allReduceClock.Stop();
                            }
                            step.OptimizerStep(lr);
                            state.OptimizerSteps++;
                        }
                    }
                    finally { task.Release(batch); }
                    state.GlobalStep++;
                    stepInEpoch++;

                    bool report = state.GlobalStep % s.LogEvery == 0 || stepInEpoch == stepsPerEpoch;
                    if (!report && !losses.Full) continue;
                    double lossValue = losses.Flush(state.StepLosses); // throws MaeNonFiniteLossException
                    if (!report) continue;
                    double secs = clock.Elapsed.TotalSeconds;
                    long stepsTimed = stepInEpoch - firstStep;
                    last = new MaeStepReport(epoch, plan.Epochs, stepInEpoch - 1, stepsPerEpoch, state.GlobalStep, lossValue, lr,
                        secs > 0 ? stepsTimed * (double)s.BatchSize / secs : 0,
                        TimeSpan.FromSeconds(secs / stepsTimed * (stepsPerEpoch * plan.Epochs - (epoch * stepsPerEpoch + stepInEpoch))), total.Elapsed);
                    metrics?.Write(last);
                    if (state.IsLead) task.Report(last);
                    if (scalar is not null && stepInEpoch % accum == 0 && state.GlobalStep % s.LogEvery == 0)
                    {
                        // The reference's x axis: epoch × 1000, which lines up runs with different batch sizes.
                        int epoch1000x = (int)(((stepInEpoch - 1) / (double)stepsPerEpoch + epoch) * 1000);
                        scalar(task.LossTag, lossValue, epoch1000x);
                        scalar("lr", lr, epoch1000x);
                    }
                }
            }
            if (stepInEpoch != stepsPerEpoch)
                throw new InvalidDataException(
                    $"The {task.DataDescription} yielded {stepInEpoch} batches in epoch {epoch}; it promises {stepsPerEpoch} at batch size {s.BatchSize}.");
            var epochSteps = state.StepLosses.Skip(state.StepLosses.Count - (int)stepsPerEpoch);
            state.EpochLosses.Add(epochSteps.Sum(l => (double)l) / stepsPerEpoch);

            // A time box: the epochs still to run re-fitted to the time left at the pace of the last epochs (before the
            // end-of-epoch work, which then knows whether this epoch was the last). The process's first epoch carries its
            // start-up (the model to the device, cold files): its pace is not counted, and the plan first moves after the second.
            if (s.TimeBox is { } box && epoch + 1 < plan.Epochs)
            {
                var now = box.Clock();
                if (epoch > state.StartEpoch) paces.Add((now - lapStart!.Value).TotalSeconds / (stepInEpoch - firstStep) * stepsPerEpoch);
                lapStart = now;
                plan = plan.EndingAt(epoch + 1, MaeTimeBudget.Refit(epoch + 1, MaeTimeBudget.RecentPace(paces), (box.DeadlineUtc - now).TotalSeconds, box.MaxEpochs, plan.Epochs));
            }
            state.Epochs = plan.Epochs;
            task.EndOfEpoch(epoch, state, last, scalar);

            if (s.CheckpointDir is not null && ((epoch + 1) % s.CheckpointEvery == 0 || epoch + 1 == plan.Epochs))
            {
                state.LastCheckpoint = checkpoint.Container.PathFor(s.CheckpointDir, epoch + 1);
                if (state.IsLead) checkpoint.Save(state.LastCheckpoint, Header(epoch + 1), model, step.Optimizer(), state.StepLosses, state.EpochLosses, task.WriteExtras);
                checkpointedStep = state.GlobalStep;
                collective?.Barrier(); // the checkpoint is complete before any rank goes on (or ends and is resumed)
            }
        }
        state.Epochs = plan.Epochs;
        state.Elapsed = total.Elapsed;
        state.AllReduceTime = allReduceClock.Elapsed;
        return state;

        MaeTrainingCheckpointHeader Header(int epochsCompleted)
            => storePlan ? task.CreateHeader(state, epochsCompleted) with { Schedule = plan } : task.CreateHeader(state, epochsCompleted);
    }

    /// <summary>Where a resumed checkpoint stands inside its next epoch: 0 after a whole epoch, else the steps a stopped run
    /// had done (its global step beyond the completed epochs), which only a task that can skip batches resumes.</summary>
    static long StepsIntoEpoch<TBatch>(MaeTrainingTask<TBatch> task, MaeTrainingCheckpointReader reader, long stepsPerEpoch)
    {
        var h = reader.Header;
        long into = h.GlobalStep - h.EpochsCompleted * h.StepsPerEpoch;
        if (into == 0) return 0;
        if (into < 0 || into >= h.StepsPerEpoch)
            throw new MaeTrainingCheckpointException(
                $"Checkpoint '{reader.Path}' is inconsistent: global step {h.GlobalStep} after {h.EpochsCompleted} epochs of {h.StepsPerEpoch} steps.", reader.Path, null);
        if (h.StepsPerEpoch != stepsPerEpoch)
            throw new InvalidOperationException(
                $"Checkpoint '{reader.Path}' was written {into} steps into an epoch of {h.StepsPerEpoch} steps; this run has {stepsPerEpoch} steps per epoch (other data or batch size), so it cannot continue inside that epoch.");
        if (!task.CanSkipBatches)
            throw new InvalidOperationException(
                $"Checkpoint '{reader.Path}' was written {into} steps into an epoch; this run's {task.DataDescription} cannot start inside an epoch.");
        return into;
    }

    /// <summary>Losses of the steps since the last report, kept on the device until read.</summary>
    sealed class PendingLosses : IDisposable
    {
        readonly Tensor buffer;
        readonly (int Epoch, long Step, long GlobalStep)[] where;
        readonly bool readEveryStep;
        readonly IMaeCollective? collective;
        int count;

        public PendingLosses(int capacity, Device device, bool readEveryStep, IMaeCollective? collective)
        {
            this.collective = collective;
            buffer = zeros(capacity, dtype: ScalarType.Float32, device: device);
            buffer.DetachFromDisposeScope();
            where = new (int, long, long)[capacity];
            this.readEveryStep = readEveryStep;
        }

        public bool Full => count == where.Length;

        public void Add(Tensor loss, int epoch, long step, long globalStep)
        {
            using (no_grad())
            using (var slot = buffer[count]) slot.copy_(loss.detach());
            where[count++] = (epoch, step, globalStep);
            if (readEveryStep)
            {
                // The old loop's host read per step (benchmarks only): same values, one sync per step.
                using var value = buffer[count - 1].cpu();
                _ = value.item<float>();
            }
        }

        /// <summary>Reads the pending losses (one device→host copy), appends them, returns the last; throws at the
        /// first non-finite one.</summary>
        public double Flush(List<float> into)
        {
            if (count == 0) return into.Count > 0 ? into[^1] : double.NaN;
            float[] values;
            // Data-parallel: each rank holds the loss of its part of the batch; their mean is the batch's loss (equal
            // parts, a per-image mean), so every rank reads — and checks — the same values.
            if (collective is not null)
                using (var pending = buffer.narrow(0, 0, count)) collective.AllReduceMean(pending);
            using (var host = buffer.narrow(0, 0, count).cpu()) values = host.data<float>().ToArray();
            for (int i = 0; i < count; i++)
            {
                if (!float.IsFinite(values[i]))
                {
                    var (e, st, g) = where[i];
                    count = 0;
                    var nonFinite = new MaeNonFiniteLossException(e, st, g, values[i]);
                    throw collective is null ? nonFinite : Agreed(nonFinite); // all-reduced: every rank sees the same value
                }
                into.Add(values[i]);
            }
            count = 0;
            return values[^1];
        }

        public void Dispose() => buffer.Dispose();
    }

    /// <summary>A batch on the training device. To CUDA the copy is asynchronous from page-locked memory (a file
    /// source's batches for CUDA already are; others are pinned here, one host copy), so the host never waits for the
    /// previous step's kernels to finish before queueing the next step.</summary>
    internal static Tensor ToDevice(Tensor batch, Device device)
    {
        if (batch.device_type == device.type && batch.device_index == device.index) return batch;
        if (device.type != DeviceType.CUDA || batch.device_type != DeviceType.CPU) return batch.to(device);
        var pinned = batch.is_pinned() ? batch : batch.pin_memory();
        return pinned.to(device, non_blocking: true);
    }
}

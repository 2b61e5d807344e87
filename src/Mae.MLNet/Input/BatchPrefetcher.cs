using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Input;

/// <summary>
/// One epoch's batches, decoded by worker threads into a ring of <c>PrefetchBatches + 1</c> batch tensors (the bounded
/// queue). Workers claim positions of the epoch in order and write each image into its row of its batch's tensor;
/// a worker whose batch is more than the ring ahead of the consumer waits, so memory is bounded by the ring. What an
/// image becomes depends only on its position and the plan, never on which worker made it or when.
/// A sharded plan (<see cref="MaeEpochPlan.WorldSize"/> &gt; 1) numbers this rank's images 0, 1, … and maps each to
/// its global epoch position with <see cref="MaeDataShard.Position"/>.
/// The consumer (the trainer's thread) allocates the tensors — outside any dispose scope — and hands each finished
/// batch over as an alias created in the caller's scope. Workers never call libtorch.
/// <para>When the workers are niced for a CPU step (<see cref="WorkerPriority"/>), as many again decode at the normal
/// priority, but only while the consumer waits for a batch: then the step is not running, so they cannot stall its
/// OpenMP threads, and other processes on the machine can no longer starve the input (measured: `--bench input
/// --contend 2`, docs/benchmarks.md). While the loader keeps ahead they sleep, and the niced workers alone decode in
/// the step's gaps. The priority follows where the bottleneck is, and only as much as it needs.</para>
/// </summary>
internal sealed unsafe class BatchPrefetcher : IDisposable
{
    sealed class Slot
    {
        public long Batch = -1;
        public int Length, Done;
        public Tensor? Images;
        public float* Data;
        public long[] Labels = Array.Empty<long>();
        public (long Position, MaeImageFileException Error)? FirstError;
    }

    readonly ImageBatchReader reader;
    readonly MaeEpochPlan plan;
    readonly long[]? order; // epoch position → image index (null: identity)
    readonly long batches, imageFloats;
    readonly Slot[] ring;
    readonly Thread[] threads;
    readonly object gate = new();
    readonly bool pinned;
    long nextPosition;      // this rank's image number (the epoch position when not sharded)
    readonly long endPosition;
    bool stopping;
    Exception? fatal;
    int finished;            // workers done (WaitUntilIdle)
    long[] awaiting = [];    // per worker: the batch whose slot it waits for, or -1 (WaitUntilIdle)
    bool[] dormant = [];     // per worker: an urgent worker waiting for the consumer to wait (WaitUntilIdle)
    bool consumerWaiting;    // the consumer waits in Take: the urgent workers decode

    readonly BadPositions bad;

    public BatchPrefetcher(ImageBatchReader reader, MaeEpochPlan plan, long[]? order, long batches, BadPositions bad)
    {
        this.bad = bad;
        this.reader = reader;
        this.plan = plan;
        this.order = order;
        this.batches = batches;
        var shape = reader.Shape;
        imageFloats = shape.Length;
        pinned = plan.TargetDevice is { type: DeviceType.CUDA };
        nextPosition = plan.SkipBatches * plan.BatchSize;
        // Sharded: full batches only (positions past n wrap around the order); else the last evaluation batch may be short.
        endPosition = plan.WorldSize > 1 ? batches * plan.BatchSize : Math.Min(batches * plan.BatchSize, reader.Images.Count);
        ring = new Slot[reader.Options.PrefetchBatches + 1];
        for (int q = 0; q < ring.Length; q++) ring[q] = new Slot();
        // Batch b lives in slot b mod ring (where workers and Take look for it), also when resuming at any batch.
        for (long b = plan.SkipBatches; b < plan.SkipBatches + ring.Length; b++) Prepare(ring[b % ring.Length], b);
        long work = endPosition - nextPosition;
        int niced = (int)Math.Max(1, Math.Min(reader.Options.Workers, work));
        // Nice only when the step competes for the same cores (a CPU step, or a consumer that does not say where it runs);
        // then as many urgent workers at the normal priority (see the class remarks).
        int nice = reader.Options.ResolveWorkerNice(stepOnCpu: !pinned);
        bool urgentToo = nice > 0 && WorkerPriority.Supported && reader.Options.UrgentWorkers;
        threads = new Thread[urgentToo ? 2 * niced : niced];
        awaiting = Enumerable.Repeat(-1L, threads.Length).ToArray();
        dormant = new bool[threads.Length];
        for (int t = 0; t < threads.Length; t++)
        {
            int worker = t;
            bool urgent = t >= niced;
            threads[t] = new Thread(() => Work(worker, urgent ? 0 : nice, urgent)) { IsBackground = true, Name = $"Mae input worker {t}{(urgent ? " (urgent)" : "")}" };
            threads[t].Start();
        }
    }

    int LengthOf(long batch) => (int)Math.Min(plan.BatchSize, endPosition - batch * plan.BatchSize);

    /// <summary>Gives the slot a fresh tensor for <paramref name="batch"/> (consumer thread only).</summary>
    void Prepare(Slot slot, long batch)
    {
        Tensor? images = null;
        int length = 0;
        if (batch < batches)
        {
            var s = reader.Shape;
            length = LengthOf(batch);
            using (NewDisposeScope())
            {
                var t = empty(new long[] { length, s.Channels, s.Height, s.Width }, ScalarType.Float32, CPU);
                if (pinned) t = t.pin_memory();
                images = t.DetachFromDisposeScope();
            }
        }
        float* data = images is null ? null : DataPointer(images);
        lock (gate)
        {
            slot.Images = images;
            slot.Data = data;
            slot.Length = length;
            slot.Labels = new long[length];
            slot.Done = 0;
            slot.FirstError = null;
            slot.Batch = images is null ? -1 : batch;
            Monitor.PulseAll(gate);
        }
    }

    static float* DataPointer(Tensor t)
    {
        using var first = t.narrow(0, 0, 1); // one image: its byte span stays under 2 GiB whatever the batch
        return (float*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(first.bytes));
    }

    void Work(int worker, int nice, bool urgent)
    {
        WorkerPriority.Lower(nice);
        var sampler = new ImageSampler(reader.Options);
        try
        {
            while (true)
            {
                if (urgent)
                    lock (gate)
                    {
                        if (!stopping && !consumerWaiting && Interlocked.Read(ref nextPosition) < endPosition)
                        {
                            dormant[worker] = true;
                            Monitor.PulseAll(gate);   // WaitUntilIdle may be looking
                            while (!stopping && !consumerWaiting && Interlocked.Read(ref nextPosition) < endPosition) Monitor.Wait(gate);
                            dormant[worker] = false;
                        }
                        if (stopping) return;
                    }
                else if (reader.Options.HoldNicedWorkers is { } hold)
                {
                    hold.Wait();
                    if (Volatile.Read(ref stopping)) return;
                }
                long p = Interlocked.Increment(ref nextPosition) - 1;
                if (p >= endPosition) return;
                long b = p / plan.BatchSize;
                var slot = ring[b % ring.Length];
                float* data;
                lock (gate)
                {
                    if (!stopping && slot.Batch != b)
                    {
                        awaiting[worker] = b;
                        Monitor.PulseAll(gate);   // WaitUntilIdle may be looking
                        while (!stopping && slot.Batch != b) Monitor.Wait(gate);
                        awaiting[worker] = -1;
                    }
                    if (stopping) return;
                    data = slot.Data;
                }
                int row = (int)(p - b * plan.BatchSize);
                MaeImageFileException? error = null;
                long label = 0;
                long position = MaeDataShard.Position(b, row, plan.BatchSize, plan.Rank, plan.WorldSize);
                try { label = reader.Produce(sampler, plan, order, position, bad, data + row * imageFloats); }
                catch (MaeImageFileException e) { error = e; }
                lock (gate)
                {
                    slot.Labels[row] = label;
                    if (error is not null && (slot.FirstError is null || p < slot.FirstError.Value.Position)) slot.FirstError = (p, error);
                    if (++slot.Done == slot.Length) Monitor.PulseAll(gate);
                }
            }
        }
        catch (Exception e)
        {
            lock (gate)
            {
                fatal ??= e;
                Monitor.PulseAll(gate);
            }
        }
        finally
        {
            lock (gate)
            {
                finished++;
                Monitor.PulseAll(gate);
            }
        }
    }

    /// <summary>Blocks until every worker waits for a ring slot or has finished — the state in which no more images
    /// are decoded until the consumer takes a batch (tests look at memory there, by state rather than by time).
    /// False if that did not happen within <paramref name="timeout"/>.</summary>
    internal bool WaitUntilIdle(TimeSpan timeout)
    {
        var end = DateTime.UtcNow + timeout;
        lock (gate)
        {
            while (!Idle())
            {
                var left = end - DateTime.UtcNow;
                if (left <= TimeSpan.Zero || !Monitor.Wait(gate, left)) return Idle();
            }
            return true;
        }
    }

    /// <summary>Under the gate: every worker has finished or waits for a slot that still holds another batch. A worker
    /// woken because its slot was just freed still counts as busy: it has not yet taken the lock back to leave its wait
    /// (counting it idle there let a test read the image count while that worker was about to decode).</summary>
    bool Idle()
    {
        int idle = finished;
        for (int w = 0; w < threads.Length; w++)
            if (awaiting[w] is long b && b >= 0 && ring[b % ring.Length].Batch != b || dormant[w] && !consumerWaiting) idle++;
        return idle >= threads.Length;
    }

    /// <summary>Waits for <paramref name="batch"/> and returns its images [B, C, H, W] (in the caller's dispose scope)
    /// and labels; the slot then starts on the batch a ring further on.</summary>
    public (Tensor Images, long[] Labels) Take(long batch)
    {
        var slot = ring[batch % ring.Length];
        lock (gate)
        {
            if (fatal is null && (slot.Batch != batch || slot.Done < slot.Length))
            {
                consumerWaiting = true;   // the step is not running: the urgent workers help
                Monitor.PulseAll(gate);
                while (fatal is null && (slot.Batch != batch || slot.Done < slot.Length)) Monitor.Wait(gate);
                consumerWaiting = false;
            }
            if (fatal is not null)
                throw new InvalidOperationException($"An image decode worker failed: {fatal.Message}", fatal);
        }
        if (slot.FirstError is { } e) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.Error).Throw();
        var images = slot.Images!.alias(); // registered in the caller's scope; the slot's handle is released
        var labels = slot.Labels;
        slot.Images.Dispose();
        Prepare(slot, batch + ring.Length);
        return (images, labels);
    }

    public void Dispose()
    {
        lock (gate)
        {
            stopping = true;
            Monitor.PulseAll(gate);
        }
        foreach (var t in threads) t.Join();
        foreach (var s in ring) s.Images?.Dispose();
    }
}

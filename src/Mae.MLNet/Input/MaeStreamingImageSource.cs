using static TorchSharp.torch;

namespace Mae.MLNet.Input;

/// <summary>
/// Images that can only be enumerated front to back (an ML.NET <c>IDataView</c> cursor, files on disk): each epoch
/// opens a fresh enumeration and, for a training plan, shuffles it through a buffer of <see cref="ShuffleBufferSize"/>
/// images (a buffer at least as large as <see cref="Count"/> gives a full shuffle). The buffer's random choices come
/// from the plan's (seed, epoch) (<see cref="MaePlanRandom.StreamSeed"/>), so an epoch repeats and a resume inside it
/// skips to the same place. It cannot be sharded over data-parallel ranks.
/// </summary>
internal sealed class MaeStreamingImageSource : IMaeImageSource
{
    readonly Func<IEnumerable<float[]>> _open;

    /// <param name="open">Opens one pass over the images, each a CHW float array of <paramref name="shape"/>.Length values.</param>
    /// <param name="shape">Shape of every image.</param>
    /// <param name="count">Images per pass (e.g. <c>IDataView.GetRowCount()</c>); a pass that ends early is an error.</param>
    /// <param name="shuffleBufferSize">Images held for shuffling (default 4096).</param>
    public MaeStreamingImageSource(Func<IEnumerable<float[]>> open, MaeImageShape shape, long count, int shuffleBufferSize = 4096)
    {
        _open = open ?? throw new ArgumentNullException(nameof(open));
        shape.Validate(nameof(shape));
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "count must be at least 1: pre-training needs at least one image.");
        if (shuffleBufferSize < 1) throw new ArgumentOutOfRangeException(nameof(shuffleBufferSize), shuffleBufferSize, "The shuffle buffer must hold at least 1 image.");
        Shape = shape;
        Count = count;
        ShuffleBufferSize = shuffleBufferSize;
    }

    public long Count { get; }
    public MaeImageShape Shape { get; }
    public int ShuffleBufferSize { get; }

    public IEnumerable<Tensor> Batches(MaeEpochPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        plan.Validate();
        if (plan.WorldSize > 1)
            throw new ArgumentException($"An enumerated image stream cannot be sharded over {plan.WorldSize} ranks; use an in-memory or file source for data-parallel training.", nameof(plan));
        return Iterate(plan);
    }

    IEnumerable<Tensor> Iterate(MaeEpochPlan plan)
    {
        int batchSize = plan.BatchSize;
        var rng = plan.Training ? new Random(MaePlanRandom.StreamSeed(plan.Seed, plan.Epoch)) : null;
        bool shuffle = rng is not null;
        // Training drops an incomplete last batch (as the reference's drop_last); evaluation keeps it.
        long len = Shape.Length, batches = plan.Training ? Count / batchSize : (Count + batchSize - 1) / batchSize, emitted = 0, read = 0;
        var buffer = new List<float[]>(shuffle ? Math.Min(ShuffleBufferSize, (int)Math.Min(Count, int.MaxValue)) : 0);
        var batch = new float[checked(len * batchSize)];
        int inBatch = 0;
        // A new array per batch: the tensor may share the managed buffer.

        IEnumerable<float[]> Shuffled()
        {
            foreach (var a in _open())
            {
                if (read == Count) break;
                MaeImageSource.CheckArray(a, read, Shape, "images", throwInvalidData: true);
                read++;
                if (rng is null) { yield return a; continue; }
                if (buffer.Count < ShuffleBufferSize) { buffer.Add(a); continue; }
                int j = rng.Next(buffer.Count);
                var o = buffer[j];
                buffer[j] = a;
                yield return o;
            }
            if (rng is not null)
                while (buffer.Count > 0)
                {
                    int j = rng.Next(buffer.Count);
                    var o = buffer[j];
                    buffer[j] = buffer[^1];
                    buffer.RemoveAt(buffer.Count - 1);
                    yield return o;
                }
        }

        foreach (var a in Shuffled())
        {
            if (emitted < plan.SkipBatches)
            {
                // Batches a resume has already trained on: drawn and dropped, so the buffer's choices stay in step.
                if (++inBatch == batchSize) { inBatch = 0; emitted++; }
                continue;
            }
            Array.Copy(a, 0, batch, inBatch * len, len);
            if (++inBatch < batchSize) continue;
            inBatch = 0;
            var full = batch;
            batch = new float[full.LongLength];
            yield return tensor(full, new long[] { batchSize, Shape.Channels, Shape.Height, Shape.Width });
            if (++emitted == batches) yield break;
        }
        if (read < Count)
            throw new InvalidDataException($"The image stream ended after {read} images, but the source was declared with Count = {Count}.");
        if (inBatch > 0 && !plan.Training)
        {
            Array.Resize(ref batch, checked((int)(inBatch * len)));
            yield return tensor(batch, new long[] { inBatch, Shape.Channels, Shape.Height, Shape.Width });
        }
    }
}

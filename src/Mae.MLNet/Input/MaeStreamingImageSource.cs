using static TorchSharp.torch;

namespace Mae.MLNet.Input;

/// <summary>
/// Images that can only be enumerated front to back (an ML.NET <c>IDataView</c> cursor, files on disk): each epoch
/// opens a fresh enumeration and shuffles it through a buffer of <see cref="ShuffleBufferSize"/> images (a buffer
/// at least as large as <see cref="Count"/> gives a full shuffle). The buffer's random choices come from a seed
/// drawn from libtorch's global generator at the start of the epoch, so checkpoints cover them.
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

    public IEnumerable<Tensor> EpochBatches(int batchSize, bool shuffle)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size must be at least 1.");
        return Iterate(batchSize, shuffle);
    }

    IEnumerable<Tensor> Iterate(int batchSize, bool shuffle)
    {
        Random? rng = null;
        if (shuffle)
        {
            using var s = randint(0, int.MaxValue, new long[] { 1 }, dtype: int64);
            rng = new Random((int)s.item<long>());
        }
        long len = Shape.Length, batches = Count / batchSize, emitted = 0, read = 0;
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
    }
}

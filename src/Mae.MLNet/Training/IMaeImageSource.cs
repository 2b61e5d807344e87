using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>
/// Images for pre-training: a known count of same-sized CHW float images, read one epoch at a time in batches.
/// Implement <see cref="MaeIndexedImageSource"/> for random access (the trainer-independent shuffle is a
/// <c>randperm</c>), or use <see cref="MaeStreamingImageSource"/> for data that can only be enumerated (an ML.NET
/// <c>IDataView</c> cursor).
/// </summary>
public interface IMaeImageSource
{
    /// <summary>Number of images in one epoch.</summary>
    long Count { get; }

    /// <summary>Shape of every image.</summary>
    MaeImageShape Shape { get; }

    /// <summary>
    /// One epoch: <c>Count / batchSize</c> full batches <c>[batchSize, C, H, W]</c> of float32 on the CPU (an
    /// incomplete last batch is dropped, as the reference's <c>drop_last=True</c>). When <paramref name="shuffle"/>
    /// is set the order is drawn from libtorch's global generator, so a checkpoint of its state reproduces it.
    /// Each tensor belongs to the caller. The enumeration is lazy; its randomness is drawn on the first MoveNext.
    /// </summary>
    IEnumerable<Tensor> EpochBatches(int batchSize, bool shuffle);
}

/// <summary>A source with random access by image index; shuffles with <c>torch.randperm(Count)</c> per epoch.</summary>
public abstract class MaeIndexedImageSource : IMaeImageSource
{
    public abstract long Count { get; }
    public abstract MaeImageShape Shape { get; }

    /// <summary>The images at <paramref name="indices"/> as one float32 CPU tensor [indices.Length, C, H, W].</summary>
    public abstract Tensor GetBatch(long[] indices);

    public IEnumerable<Tensor> EpochBatches(int batchSize, bool shuffle)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size must be at least 1.");
        return Iterate(batchSize, shuffle);
    }

    IEnumerable<Tensor> Iterate(int batchSize, bool shuffle)
    {
        long n = Count;
        long[] order;
        if (shuffle)
        {
            using var perm = randperm(n, dtype: int64);
            order = perm.data<long>().ToArray();
        }
        else order = Enumerable.Range(0, checked((int)n)).Select(i => (long)i).ToArray();
        long batches = n / batchSize;
        for (long b = 0; b < batches; b++)
        {
            var idx = new long[batchSize];
            Array.Copy(order, b * batchSize, idx, 0, batchSize);
            yield return GetBatch(idx);
        }
    }
}

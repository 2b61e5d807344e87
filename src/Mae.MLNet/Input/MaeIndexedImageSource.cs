using static TorchSharp.torch;

namespace Mae.MLNet.Input;

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
        var order = EpochOrder(Count, shuffle);
        long batches = Count / batchSize;
        for (long b = 0; b < batches; b++)
        {
            var idx = new long[batchSize];
            Array.Copy(order, b * batchSize, idx, 0, batchSize);
            yield return GetBatch(idx);
        }
    }

    /// <summary>The image order of one epoch: <c>torch.randperm(n)</c> from libtorch's global generator when
    /// <paramref name="shuffle"/> is set, else 0 … n − 1.</summary>
    internal static long[] EpochOrder(long n, bool shuffle)
    {
        if (!shuffle) return Enumerable.Range(0, checked((int)n)).Select(i => (long)i).ToArray();
        using var perm = randperm(n, dtype: int64);
        return perm.data<long>().ToArray();
    }
}

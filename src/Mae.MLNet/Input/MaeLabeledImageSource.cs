using static TorchSharp.torch;

namespace Mae.MLNet.Input;

/// <summary>Labelled images for fine-tuning and validation: a known count of same-sized CHW float images in [0, 1]
/// with class indices 0 … K − 1.</summary>
public interface IMaeLabeledImageSource
{
    long Count { get; }
    MaeImageShape Shape { get; }
    /// <summary>The largest label + 1 (every label is in [0, LabelBound)).</summary>
    int LabelBound { get; }

    /// <summary>One pass in batches: images [B, C, H, W] float32 and labels [B] int64, both on the CPU and owned by
    /// the caller. With <paramref name="shuffle"/> the order is <c>randperm</c> from libtorch's global generator;
    /// with <paramref name="dropLast"/> an incomplete last batch is left out.</summary>
    IEnumerable<(Tensor Images, Tensor Labels)> Batches(int batchSize, bool shuffle, bool dropLast);
}

/// <summary>In-memory labelled images (one float32 CPU tensor and a label array).</summary>
public sealed class MaeLabeledImageSource : IMaeLabeledImageSource, IDisposable
{
    readonly MaeTensorImageSource images;
    readonly long[] labels;

    /// <summary>Copies <paramref name="images"/> [N, C, H, W] and checks one non-negative label per image.</summary>
    public MaeLabeledImageSource(Tensor images, IReadOnlyList<long> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        this.images = new MaeTensorImageSource(images);
        if (labels.Count != this.images.Count)
        {
            this.images.Dispose();
            throw new ArgumentException($"There are {this.images.Count} images but {labels.Count} labels; expected one label per image.", nameof(labels));
        }
        for (int i = 0; i < labels.Count; i++)
            if (labels[i] < 0 || labels[i] > int.MaxValue - 1)
            {
                this.images.Dispose();
                throw new ArgumentOutOfRangeException(nameof(labels), labels[i], $"Label {i} is {labels[i]}; labels must be class indices ≥ 0.");
            }
        this.labels = labels.ToArray();
        LabelBound = this.labels.Length == 0 ? 0 : (int)this.labels.Max() + 1;
    }

    /// <summary>From CHW float arrays of <paramref name="shape"/> and their labels.</summary>
    public static MaeLabeledImageSource FromArrays(IEnumerable<float[]> images, IEnumerable<long> labels, MaeImageShape shape)
    {
        using var source = MaeImageSource.FromArrays(images, shape);
        using var all = source.GetBatch(Enumerable.Range(0, checked((int)source.Count)).Select(i => (long)i).ToArray());
        return new MaeLabeledImageSource(all, labels.ToList());
    }

    public long Count => images.Count;
    public MaeImageShape Shape => images.Shape;
    public int LabelBound { get; }

    /// <summary>The images [indices.Length, C, H, W] and labels [indices.Length] at <paramref name="indices"/>.</summary>
    public (Tensor Images, Tensor Labels) GetBatch(long[] indices)
    {
        ArgumentNullException.ThrowIfNull(indices);
        foreach (var i in indices)
            if (i < 0 || i >= Count) throw new ArgumentOutOfRangeException(nameof(indices), i, $"Image index {i} is outside 0 … {Count - 1}.");
        return (images.GetBatch(indices), tensor(indices.Select(i => labels[i]).ToArray(), dtype: int64));
    }

    public IEnumerable<(Tensor Images, Tensor Labels)> Batches(int batchSize, bool shuffle, bool dropLast)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size must be at least 1.");
        return Iterate(batchSize, shuffle, dropLast);
    }

    IEnumerable<(Tensor, Tensor)> Iterate(int batchSize, bool shuffle, bool dropLast)
    {
        var order = MaeIndexedImageSource.EpochOrder(Count, shuffle);
        for (long start = 0; start < order.Length; start += batchSize)
        {
            long n = Math.Min(batchSize, order.Length - start);
            if (n < batchSize && dropLast) yield break;
            var idx = order.AsSpan((int)start, (int)n).ToArray();
            yield return GetBatch(idx);
        }
    }

    public void Dispose() => images.Dispose();
}

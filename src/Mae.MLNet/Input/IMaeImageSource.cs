using static TorchSharp.torch;

namespace Mae.MLNet.Input;

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

using static TorchSharp.torch;

namespace Mae.MLNet.Input;

/// <summary>In-memory images held as one float32 CPU tensor [N, C, H, W].</summary>
public sealed class MaeTensorImageSource : MaeIndexedImageSource, IDisposable
{
    readonly Tensor _images;

    /// <summary>Takes a copy of <paramref name="images"/> [N, C, H, W] (any floating dtype / device).</summary>
    public MaeTensorImageSource(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.IsInvalid) throw new ArgumentException("images: the tensor has been disposed.", nameof(images));
        if (images.dim() != 4)
            throw new ArgumentException(
                $"images must be a 4-D batch [N, C, H, W]; got a {images.dim()}-D tensor of shape [{string.Join(", ", images.shape)}].", nameof(images));
        if (images.shape[0] == 0) throw new ArgumentException("images is empty (N = 0): pre-training needs at least one image.", nameof(images));
        if (!images.is_floating_point()) throw new ArgumentException($"images must hold floating-point pixels; got dtype {images.dtype}.", nameof(images));
        var shape = new MaeImageShape(checked((int)images.shape[1]), checked((int)images.shape[2]), checked((int)images.shape[3]));
        shape.Validate(nameof(images));
        using (var finite = images.isfinite())
        using (var all = finite.all())
            if (!all.item<bool>()) throw new ArgumentException("images contains NaN or infinite values; expected finite pixels.", nameof(images));
        using var f = images.detach().to(float32, CPU);
        _images = f.contiguous().clone();
        _images.DetachFromDisposeScope();
        Shape = shape;
        Count = images.shape[0];
    }

    public override long Count { get; }
    public override MaeImageShape Shape { get; }

    public override Tensor GetBatch(long[] indices)
    {
        ArgumentNullException.ThrowIfNull(indices);
        foreach (var i in indices)
            if (i < 0 || i >= Count) throw new ArgumentOutOfRangeException(nameof(indices), i, $"Image index must be in [0, {Count}); got {i}.");
        using var idx = tensor(indices, dtype: int64);
        return _images.index_select(0, idx);
    }

    public void Dispose() => _images.Dispose();
}

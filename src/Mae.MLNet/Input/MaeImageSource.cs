using static TorchSharp.torch;

namespace Mae.MLNet.Input;

/// <summary>Builds image sources from in-memory data, with the checks pre-training needs (no images, mixed sizes,
/// non-finite pixels) raised as .NET exceptions naming the offending image.</summary>
public static class MaeImageSource
{
    /// <summary>From a batch tensor [N, C, H, W].</summary>
    public static MaeTensorImageSource FromTensor(Tensor images) => new(images);

    /// <summary>From single images [C, H, W], all of one shape.</summary>
    public static MaeTensorImageSource FromTensors(IEnumerable<Tensor> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        var list = images.ToList();
        if (list.Count == 0) throw new ArgumentException("images is empty: pre-training needs at least one image.", nameof(images));
        long[]? first = null;
        for (int i = 0; i < list.Count; i++)
        {
            var t = list[i] ?? throw new ArgumentException($"images[{i}] is null.", nameof(images));
            if (t.dim() != 3)
                throw new ArgumentException($"images[{i}] must be one image [C, H, W]; got shape [{string.Join(", ", t.shape)}].", nameof(images));
            first ??= t.shape;
            if (!t.shape.SequenceEqual(first))
                throw new ArgumentException(
                    $"Mixed image sizes: images[{i}] is [{string.Join(", ", t.shape)}] but images[0] is [{string.Join(", ", first)}]; resize all images to one size first.", nameof(images));
        }
        using var scope = NewDisposeScope();
        var stacked = stack(list, 0);
        return new MaeTensorImageSource(stacked);
    }

    /// <summary>From CHW float arrays (e.g. ML.NET ExtractPixels output), each of <paramref name="shape"/>.Length values.</summary>
    public static MaeTensorImageSource FromArrays(IEnumerable<float[]> images, MaeImageShape shape)
    {
        ArgumentNullException.ThrowIfNull(images);
        shape.Validate(nameof(shape));
        var list = images as IReadOnlyList<float[]> ?? images.ToList();
        if (list.Count == 0) throw new ArgumentException("images is empty: pre-training needs at least one image.", nameof(images));
        long len = shape.Length;
        var flat = new float[checked(len * list.Count)];
        for (int i = 0; i < list.Count; i++)
        {
            var a = list[i];
            CheckArray(a, i, shape, nameof(images), throwInvalidData: false);
            Array.Copy(a, 0, flat, i * len, len);
        }
        using var t = tensor(flat, new long[] { list.Count, shape.Channels, shape.Height, shape.Width });
        return new MaeTensorImageSource(t);
    }

    public static MaeTensorImageSource FromArrays(IEnumerable<float[]> images, int channels, int height, int width)
        => FromArrays(images, new MaeImageShape(channels, height, width));

    internal static void CheckArray(float[]? a, long index, MaeImageShape shape, string name, bool throwInvalidData)
    {
        string? problem = null;
        if (a is null) problem = $"image {index} is null";
        else if (a.LongLength != shape.Length)
            problem = $"Mixed image sizes: image {index} has {a.LongLength} values but {shape} needs {shape.Length}";
        else
        {
            for (long j = 0; j < a.LongLength; j++)
                if (!float.IsFinite(a[j])) { problem = $"image {index} has a non-finite value ({a[j]}) at position {j}"; break; }
        }
        if (problem is null) return;
        if (throwInvalidData) throw new InvalidDataException(problem + ".");
        throw new ArgumentException(problem + ".", name);
    }
}

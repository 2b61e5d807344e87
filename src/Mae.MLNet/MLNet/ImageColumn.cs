using Mae.MLNet.Input;
using Mae.MLNet.Model;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace Mae.MLNet;

/// <summary>What an image column holds.</summary>
internal enum ImageColumnKind
{
    /// <summary>A known-size Single vector of C·H·W values (ExtractPixels, CHW).</summary>
    Pixels,
    /// <summary>An MLImage of the model's size (LoadImages + ResizeImages).</summary>
    Image,
    /// <summary>Text: image file paths (decoded, resized and centre-cropped inside).</summary>
    Path,
    /// <summary>A vector of Byte: encoded image files (LoadRawImageBytes).</summary>
    Bytes,
}

/// <summary>Reads one image per row from an input column into a CHW float buffer, after checking that the column
/// fits the model: a known-size Single vector of C·H·W values, an MLImage of H×W pixels, a text column of image file
/// paths, or a byte-vector column of encoded images. Images, paths and bytes are read as [0, 1] values; paths and
/// bytes through the reference's evaluation transform (resize the shorter side to S/0.875, centre crop S, PIL's
/// bicubic).</summary>
internal sealed class ImageColumn
{
    public DataViewSchema.Column Column { get; }
    public ImageColumnKind Kind { get; }
    public bool IsImage => Kind == ImageColumnKind.Image;
    /// <summary>Paths or encoded bytes.</summary>
    public bool IsEncoded => Kind is ImageColumnKind.Path or ImageColumnKind.Bytes;
    /// <summary>Read as [0, 1] pixels whatever the column (every kind but a pixel vector).</summary>
    public bool ReadsUnitPixels => Kind != ImageColumnKind.Pixels;
    public int Length { get; }
    readonly MaeConfig config;

    ImageColumn(DataViewSchema.Column column, ImageColumnKind kind, MaeConfig config)
    {
        Column = column; Kind = kind; this.config = config;
        Length = config.InChannels * config.ImageSize * config.ImageSize;
    }

    public static ImageColumn Bind(DataViewSchema schema, string name, MaeConfig config)
    {
        if (schema.GetColumnOrNull(name) is not DataViewSchema.Column column)
            throw new ArgumentOutOfRangeException(nameof(schema),
                $"Input column '{name}' was not found. Available columns: {string.Join(", ", schema.Select(c => $"'{c.Name}'"))}.");
        int expected = config.InChannels * config.ImageSize * config.ImageSize;
        string wanted = $"a vector of Single of size {expected} (C·H·W = {config.InChannels}·{config.ImageSize}·{config.ImageSize}, CHW order), an image of {config.ImageSize}×{config.ImageSize}, " +
                        "a text column of image file paths, or a vector of Byte of encoded images (LoadRawImageBytes)";
        switch (column.Type)
        {
            case VectorDataViewType v when v.ItemType == NumberDataViewType.Single:
                if (v.Size != expected)
                    throw new ArgumentOutOfRangeException(nameof(schema),
                        $"Column '{name}' is a vector of Single of size {(v.Size == 0 ? "unknown (variable)" : v.Size.ToString())}; the MAE expects {wanted}.");
                return new ImageColumn(column, ImageColumnKind.Pixels, config);
            case ImageDataViewType img:
                if ((img.Height != 0 && img.Height != config.ImageSize) || (img.Width != 0 && img.Width != config.ImageSize))
                    throw new ArgumentOutOfRangeException(nameof(schema),
                        $"Column '{name}' holds {img.Width}×{img.Height} images; the MAE expects {config.ImageSize}×{config.ImageSize} (use ResizeImages).");
                return new ImageColumn(column, ImageColumnKind.Image, config);
            case TextDataViewType:
                CheckDecodable(name, config);
                return new ImageColumn(column, ImageColumnKind.Path, config);
            case VectorDataViewType v when v.ItemType == NumberDataViewType.Byte:
                CheckDecodable(name, config);
                return new ImageColumn(column, ImageColumnKind.Bytes, config);
            default:
                throw new ArgumentOutOfRangeException(nameof(schema), $"Column '{name}' has type {column.Type}; the MAE expects {wanted}.");
        }
    }

    static void CheckDecodable(string name, MaeConfig config)
    {
        if (config.InChannels is not (1 or 3))
            throw new ArgumentOutOfRangeException(nameof(config), config.InChannels,
                $"Column '{name}' holds encoded images, which decode to 1 or 3 channels; the model has {config.InChannels}.");
    }

    /// <summary>How encoded images are decoded for this model: its size and channels, no normalisation ([0, 1]).</summary>
    internal MaeImageInputOptions DecodeOptions(MaeImageInputOptions? input = null)
        => (input ?? new MaeImageInputOptions()).With(new MaeAugmentationOptions
        {
            OutputSize = config.ImageSize, Channels = config.InChannels, Normalization = PixelNormalization.Identity(config.InChannels),
        }).Validate();

    /// <summary>A reader for the cursor's current row: copies its image into dest[offset .. offset + Length).</summary>
    public Action<float[], int> MakeReader(DataViewRow row)
    {
        switch (Kind)
        {
            case ImageColumnKind.Pixels:
                var getter = row.GetGetter<VBuffer<float>>(Column);
                VBuffer<float> buffer = default;
                return (dest, offset) =>
                {
                    getter(ref buffer);
                    if (buffer.Length != Length)
                        throw new InvalidOperationException($"Row {row.Position} of column '{Column.Name}' has {buffer.Length} values; expected {Length}.");
                    var span = dest.AsSpan(offset, Length);
                    buffer.CopyTo(span);
                    for (int i = 0; i < span.Length; i++)
                        if (!float.IsFinite(span[i]))
                            throw new InvalidOperationException(
                                $"Row {row.Position} of column '{Column.Name}' holds {(float.IsNaN(span[i]) ? "NaN" : "an infinite value")} at index {i}; pixels must be finite.");
                };
            case ImageColumnKind.Image:
                var imageGetter = row.GetGetter<MLImage>(Column);
                MLImage image = null!;
                return (dest, offset) =>
                {
                    imageGetter(ref image);
                    if (image is null) throw new InvalidOperationException($"Row {row.Position} of column '{Column.Name}' has no image (null).");
                    ReadImage(image, dest.AsSpan(offset, Length), row.Position);
                };
            default:
                return MakeEncodedReader(row);
        }
    }

    Action<float[], int> MakeEncodedReader(DataViewRow row)
    {
        var sampler = new ImageSampler(DecodeOptions());
        var current = new CurrentImage();
        ValueGetter<ReadOnlyMemory<char>>? text = Kind == ImageColumnKind.Path ? row.GetGetter<ReadOnlyMemory<char>>(Column) : null;
        ValueGetter<VBuffer<byte>>? bytes = Kind == ImageColumnKind.Bytes ? row.GetGetter<VBuffer<byte>>(Column) : null;
        ReadOnlyMemory<char> path = default;
        VBuffer<byte> raw = default;
        return (dest, offset) =>
        {
            current.RowName = $"row {row.Position} of column '{Column.Name}'";
            if (text is not null)
            {
                text(ref path);
                if (path.IsEmpty) throw new MaeImageFileException(current.RowName, "the path is empty; expected an image file path.");
                current.Path = path.ToString();
            }
            else
            {
                bytes!(ref raw);
                current.Path = null;
                current.Bytes = raw.DenseValues().ToArray(); // a sparse byte vector is unusual; dense ones copy once
            }
            unsafe
            {
                fixed (float* d = dest) sampler.Produce(current, 0, false, 0, 0, 0, d + offset);
            }
        };
    }

    /// <summary>Reads the whole column: paths or encoded bytes, with the names errors use. <paramref name="keep"/>
    /// (given the cursor, over the columns <paramref name="also"/> too) says per row whether to take it.</summary>
    internal (IReadOnlyList<string>? Paths, IReadOnlyList<byte[]>? Bytes, IReadOnlyList<string> Names) ReadEncoded(
        IDataView data, IEnumerable<DataViewSchema.Column> also, Func<DataViewRow, Func<bool>>? keep = null)
    {
        var paths = Kind == ImageColumnKind.Path ? new List<string>() : null;
        var blobs = Kind == ImageColumnKind.Bytes ? new List<byte[]>() : null;
        var names = new List<string>();
        using var cursor = data.GetRowCursor(also.Append(Column).DistinctBy(c => c.Index));
        var keepRow = keep?.Invoke(cursor);
        ValueGetter<ReadOnlyMemory<char>>? text = paths is not null ? cursor.GetGetter<ReadOnlyMemory<char>>(Column) : null;
        ValueGetter<VBuffer<byte>>? bytes = blobs is not null ? cursor.GetGetter<VBuffer<byte>>(Column) : null;
        ReadOnlyMemory<char> path = default;
        VBuffer<byte> raw = default;
        while (cursor.MoveNext())
        {
            if (keepRow is not null && !keepRow()) continue;
            if (text is not null)
            {
                text(ref path);
                var p = path.ToString();
                if (p.Length == 0) throw new MaeImageFileException($"row {cursor.Position} of column '{Column.Name}'", "the path is empty; expected an image file path.");
                paths!.Add(p);
                names.Add(p);
            }
            else
            {
                bytes!(ref raw);
                blobs!.Add(raw.DenseValues().ToArray());
                names.Add($"row {cursor.Position} of column '{Column.Name}'");
            }
        }
        return (paths, blobs, names);
    }

    void ReadImage(MLImage image, Span<float> dest, long position)
    {
        int size = config.ImageSize, plane = size * size;
        if (image.Width != size || image.Height != size)
            throw new InvalidOperationException(
                $"Row {position} of column '{Column.Name}' is a {image.Width}×{image.Height} image; the MAE expects {size}×{size} (use ResizeImages).");
        var pixels = image.Pixels;
        int bytesPerPixel = image.BitsPerPixel / 8;
        bool bgr = image.PixelFormat == MLPixelFormat.Bgra32;
        if (bytesPerPixel < 3 || pixels.Length < plane * bytesPerPixel)
            throw new InvalidOperationException($"Row {position} of column '{Column.Name}': unsupported pixel layout ({image.PixelFormat}, {image.BitsPerPixel} bits).");
        for (int i = 0; i < plane; i++)
        {
            var px = pixels.Slice(i * bytesPerPixel, bytesPerPixel);
            float r = (bgr ? px[2] : px[0]) / 255f, g = px[1] / 255f, b = (bgr ? px[0] : px[2]) / 255f;
            if (config.InChannels == 3) { dest[i] = r; dest[plane + i] = g; dest[2 * plane + i] = b; }
            else if (config.InChannels == 1) dest[i] = 0.299f * r + 0.587f * g + 0.114f * b;
            else throw new InvalidOperationException($"Image columns feed 1- or 3-channel models; this one has {config.InChannels} channels.");
        }
    }
}

using Mae.MLNet.Model;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace Mae.MLNet;

/// <summary>Reads one image per row from an input column into a CHW float buffer, after checking that the column
/// fits the model: a known-size Single vector of C·H·W values, or an MLImage of H×W pixels.</summary>
internal sealed class ImageColumn
{
    public DataViewSchema.Column Column { get; }
    public bool IsImage { get; }
    public int Length { get; }
    readonly MaeConfig config;

    ImageColumn(DataViewSchema.Column column, bool isImage, MaeConfig config)
    {
        Column = column; IsImage = isImage; this.config = config;
        Length = config.InChannels * config.ImageSize * config.ImageSize;
    }

    public static ImageColumn Bind(DataViewSchema schema, string name, MaeConfig config)
    {
        if (schema.GetColumnOrNull(name) is not DataViewSchema.Column column)
            throw new ArgumentOutOfRangeException(nameof(schema),
                $"Input column '{name}' was not found. Available columns: {string.Join(", ", schema.Select(c => $"'{c.Name}'"))}.");
        int expected = config.InChannels * config.ImageSize * config.ImageSize;
        string wanted = $"a vector of Single of size {expected} (C·H·W = {config.InChannels}·{config.ImageSize}·{config.ImageSize}, CHW order) or an image of {config.ImageSize}×{config.ImageSize}";
        switch (column.Type)
        {
            case VectorDataViewType v when v.ItemType == NumberDataViewType.Single:
                if (v.Size != expected)
                    throw new ArgumentOutOfRangeException(nameof(schema),
                        $"Column '{name}' is a vector of Single of size {(v.Size == 0 ? "unknown (variable)" : v.Size.ToString())}; the MAE expects {wanted}.");
                return new ImageColumn(column, false, config);
            case ImageDataViewType img:
                if ((img.Height != 0 && img.Height != config.ImageSize) || (img.Width != 0 && img.Width != config.ImageSize))
                    throw new ArgumentOutOfRangeException(nameof(schema),
                        $"Column '{name}' holds {img.Width}×{img.Height} images; the MAE expects {config.ImageSize}×{config.ImageSize} (use ResizeImages).");
                return new ImageColumn(column, true, config);
            default:
                throw new ArgumentOutOfRangeException(nameof(schema), $"Column '{name}' has type {column.Type}; the MAE expects {wanted}.");
        }
    }

    /// <summary>A reader for the cursor's current row: copies its image into dest[offset .. offset + Length).</summary>
    public Action<float[], int> MakeReader(DataViewRow row)
    {
        if (!IsImage)
        {
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
        }
        var imageGetter = row.GetGetter<MLImage>(Column);
        MLImage image = null!;
        return (dest, offset) =>
        {
            imageGetter(ref image);
            if (image is null) throw new InvalidOperationException($"Row {row.Position} of column '{Column.Name}' has no image (null).");
            ReadImage(image, dest.AsSpan(offset, Length), row.Position);
        };
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

using Microsoft.ML;
using Microsoft.ML.Transforms.Image;

namespace Mae.Cli;

/// <summary>
/// Image files of a folder as an ML.NET view: <c>Path</c> (relative to the folder), <c>Label</c> (the class
/// sub-folder's name, as torchvision's ImageFolder; empty for files directly in the folder) and <c>Pixels</c>
/// (CHW floats in [0, 1], resized to the model's size through ML.NET's LoadImages → ResizeImages → ExtractPixels).
/// </summary>
public static class ImageFolder
{
    public const string PathColumn = "Path", LabelColumn = "Label", PixelsColumn = "Pixels", ImageColumn = "Image";
    static readonly string[] Extensions = { ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp" };

    public sealed class Row
    {
        public string Path { get; set; } = "";
        public string Label { get; set; } = "";
    }

    /// <summary>Image files of <paramref name="folder"/> and its class sub-folders (one level), sorted by class then
    /// name; at least one, else a <see cref="CliException"/> naming the folder.</summary>
    public static List<Row> List(string folder, bool requireClasses)
    {
        if (!Directory.Exists(folder)) throw new CliException($"--images: the folder '{folder}' does not exist.");
        bool IsImage(string f) => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant());
        var rows = Directory.EnumerateFiles(folder).Where(IsImage).Order(StringComparer.Ordinal)
            .Select(f => new Row { Path = Path.GetFileName(f) }).ToList();
        foreach (var dir in Directory.EnumerateDirectories(folder).Order(StringComparer.Ordinal))
        {
            string label = Path.GetFileName(dir);
            rows.AddRange(Directory.EnumerateFiles(dir).Where(IsImage).Order(StringComparer.Ordinal)
                .Select(f => new Row { Path = Path.GetRelativePath(folder, f), Label = label }));
        }
        if (rows.Count == 0)
            throw new CliException($"--images: '{folder}' holds no image files ({string.Join(", ", Extensions)}), neither directly nor in sub-folders.");
        if (requireClasses)
        {
            int loose = rows.Count(r => r.Label.Length == 0), classes = rows.Select(r => r.Label).Where(l => l.Length > 0).Distinct().Count();
            if (loose > 0 || classes < 2)
                throw new CliException(
                    $"--images: fine-tuning needs one sub-folder per class (at least two) and no loose files, as torchvision's ImageFolder; '{folder}' has {classes} class folder(s) and {loose} loose file(s).");
        }
        return rows;
    }

    /// <summary>The decode → resize → CHW-floats pipeline for <paramref name="channels"/> (1 = grey, 3 = RGB).</summary>
    public static IEstimator<ITransformer> Pixels(MLContext ml, string folder, int size, int channels)
    {
        if (channels is not (1 or 3)) throw new CliException($"Images can be read with 1 (grey) or 3 (RGB) channels; the model has {channels}.");
        IEstimator<ITransformer> prep = ml.Transforms.LoadImages(ImageColumn, folder, PathColumn)
            .Append(ml.Transforms.ResizeImages(ImageColumn, size, size));
        if (channels == 1) prep = prep.Append(ml.Transforms.ConvertToGrayscale(ImageColumn));
        return prep.Append(ml.Transforms.ExtractPixels(PixelsColumn, ImageColumn, interleavePixelColors: false, scaleImage: 1f / 255,
            colorsToExtract: channels == 1 ? ImagePixelExtractingEstimator.ColorBits.Red : ImagePixelExtractingEstimator.ColorBits.Rgb));
    }
}

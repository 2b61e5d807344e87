using Mae.MLNet.Input;
using Microsoft.ML;
using Microsoft.ML.Transforms.Image;
using Mae.MLNet;

namespace Mae.Cli;

/// <summary>
/// Image files of a folder as an ML.NET view: <c>Path</c> (absolute), <c>Label</c> (the class sub-folder's name, as
/// torchvision's ImageFolder; empty for files directly in the folder) and, through <see cref="Pixels"/>, <c>Pixels</c>
/// (CHW floats in [0, 1], resized to the model's size through ML.NET's LoadImages → ResizeImages → ExtractPixels).
/// The files are found by the library's <see cref="MaeImageFolder"/>.
/// </summary>
public static class ImageFolder
{
    public const string PathColumn = "Path", LabelColumn = "Label", PixelsColumn = "Pixels", ImageColumn = "Image";

    public sealed class Row
    {
        public string Path { get; set; } = "";
        public string Label { get; set; } = "";
    }

    /// <summary>The image files under <paramref name="folder"/>, sorted; with <paramref name="requireClasses"/> one
    /// sub-folder per class (at least two), else every image with its top sub-folder's name as label. A missing or
    /// empty folder is a <see cref="MaeImageFileException"/> naming it.</summary>
    public static List<Row> List(string folder, bool requireClasses)
    {
        if (!requireClasses)
            return MaeImageFolder.ListImages(folder).Select(p => new Row { Path = p, Label = TopFolder(folder, p) }).ToList();
        var (paths, labels, classes) = MaeImageFolder.ListClasses(folder);
        if (classes.Count < 2)
            throw new CliException($"--images: fine-tuning needs one sub-folder per class, at least two; '{folder}' has one ('{classes[0]}').");
        return paths.Select((p, i) => new Row { Path = p, Label = classes[(int)labels[i]] }).ToList();
    }

    static string TopFolder(string folder, string path)
    {
        var relative = System.IO.Path.GetRelativePath(folder, path);
        int slash = relative.IndexOf(System.IO.Path.DirectorySeparatorChar);
        return slash < 0 ? "" : relative[..slash];
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

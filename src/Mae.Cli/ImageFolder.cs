using Mae.MLNet.Input;
using Mae.MLNet;

namespace Mae.Cli;

/// <summary>
/// Image files of a folder as an ML.NET view: <c>Path</c> (absolute), <c>Label</c> (the class sub-folder's name, as
/// torchvision's ImageFolder; empty for files directly in the folder) and the name of the <c>Pixels</c> column a
/// fine-tuned zip reads its images into (<c>MaeEvaluationPixels</c>).
/// The files are found by the library's <see cref="MaeImageFolder"/>.
/// </summary>
public static class ImageFolder
{
    public const string PathColumn = "Path", LabelColumn = "Label", PixelsColumn = "Pixels";

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
}

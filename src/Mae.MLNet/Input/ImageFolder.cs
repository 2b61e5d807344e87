using Mae.MLNet.Runtime;

namespace Mae.MLNet.Input;

/// <summary>Lists image files the way torchvision's <c>ImageFolder</c> does: extensions compared case-insensitively,
/// names sorted ordinally, classes = the sorted sub-folder names.</summary>
public static partial class MaeImageFolder
{
    /// <summary>The extensions taken (those SkiaSharp decodes).</summary>
    public static readonly IReadOnlyList<string> Extensions = new[] { ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp" };

    static bool IsImage(string path) => Extensions.Contains(Path.GetExtension(path), StringComparer.OrdinalIgnoreCase);

    static void CheckFolder(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        if (!Directory.Exists(folder))
            throw new MaeImageFileException(folder, "the folder does not exist; expected a folder of image files.");
    }

    /// <summary>The image files under <paramref name="folder"/>, sorted by folder then name. Symbolic links to folders
    /// are followed (torchvision's <c>os.walk(followlinks=True)</c>; data sets are often assembled from links), but each
    /// folder is entered once, by its real path: a link back to an ancestor (a loop) or a second link to a folder
    /// already walked adds nothing, so the walk ends and no folder's files are listed twice. Real sub-folders are
    /// walked before links (each in name order), so a folder reachable both ways is listed under its real path,
    /// whatever the links are called. Hidden entries (names starting with '.') are skipped. A sub-folder that cannot
    /// be read is a <see cref="MaeImageFileException"/> naming it.</summary>
    static List<string> FilesUnder(string folder)
    {
        var files = new List<string>();
        var visited = new HashSet<string>(StringComparer.Ordinal);
        var real = new Stack<string>();
        var links = new Queue<string>();
        real.Push(folder);
        var options = new EnumerationOptions { RecurseSubdirectories = false, IgnoreInaccessible = false, AttributesToSkip = FileAttributes.Hidden };
        while (real.Count > 0 || links.Count > 0)
        {
            string dir = real.Count > 0 ? real.Pop() : links.Dequeue();
            if (!visited.Add(RegularFile.RealPath(dir))) continue;
            try
            {
                files.AddRange(Directory.EnumerateFiles(dir, "*", options).Where(IsImage));
                var subs = new DirectoryInfo(dir).EnumerateDirectories("*", options).OrderBy(d => d.Name, StringComparer.Ordinal).ToList();
                foreach (var sub in subs.Where(d => (d.Attributes & FileAttributes.ReparsePoint) != 0)) links.Enqueue(sub.FullName);
                foreach (var sub in Enumerable.Reverse(subs).Where(d => (d.Attributes & FileAttributes.ReparsePoint) == 0)) real.Push(sub.FullName);
            }
            catch (Exception e) when (e is UnauthorizedAccessException or IOException)
            {
                throw new MaeImageFileException(dir, $"the folder cannot be listed ({e.Message}).", e);
            }
        }
        return files.OrderBy(p => Path.GetDirectoryName(p), StringComparer.Ordinal).ThenBy(p => Path.GetFileName(p), StringComparer.Ordinal).ToList();
    }

    /// <summary>Every image file under <paramref name="folder"/> (sub-folders included), sorted: the pre-training set.</summary>
    public static IReadOnlyList<string> ListImages(string folder)
    {
        CheckFolder(folder);
        var files = FilesUnder(folder);
        if (files.Count == 0)
            throw new MaeImageFileException(folder, $"the folder holds no image files (looked for {string.Join(", ", Extensions)}, sub-folders included).");
        return files;
    }

    /// <summary>One sub-folder per class: the sorted sub-folder names are the classes 0 … K − 1; each one's images
    /// (its own sub-folders included) carry its index.</summary>
    public static (IReadOnlyList<string> Paths, long[] Labels, IReadOnlyList<string> Classes) ListClasses(string folder)
    {
        CheckFolder(folder);
        var classes = Directory.GetDirectories(folder).Select(Path.GetFileName).OfType<string>()
            .Where(n => !n.StartsWith('.')).OrderBy(n => n, StringComparer.Ordinal).ToList();
        if (classes.Count == 0)
            throw new MaeImageFileException(folder, "the folder has no sub-folders; expected one sub-folder of images per class (torchvision's ImageFolder layout).");
        var paths = new List<string>();
        var labels = new List<long>();
        for (int c = 0; c < classes.Count; c++)
        {
            var files = FilesUnder(Path.Combine(folder, classes[c]));
            if (files.Count == 0)
                throw new MaeImageFileException(Path.Combine(folder, classes[c]), $"the class folder '{classes[c]}' holds no image files ({string.Join(", ", Extensions)}).");
            paths.AddRange(files);
            labels.AddRange(Enumerable.Repeat((long)c, files.Count));
        }
        return (paths, labels.ToArray(), classes);
    }

    /// <summary>The preset for a folder's images (<see cref="Model.MaeConfig.ForImages"/> on <see cref="SampleSizes"/>),
    /// with the sample it was chosen from.</summary>
    public static (Model.MaeConfig.PresetChoice Choice, MaeImageFolder.SizeSample Sample) ChoosePreset(string folder, bool cuda)
    {
        var sample = SampleSizes(folder);
        return (Model.MaeConfig.ForImages(sample.MedianShortSide, sample.Channels, cuda), sample);
    }

    /// <summary>
    /// The typical size of a folder's images from the headers of up to <paramref name="count"/> files spread evenly over
    /// the sorted list (no pixel is decoded): the median shorter side, and 1 channel when every sampled image is grey,
    /// else 3. Files whose header cannot be read are passed over; when none can be read this throws a
    /// <see cref="MaeImageFileException"/> naming the first.
    /// </summary>
    public static MaeImageFolder.SizeSample SampleSizes(string folder, int count = 16)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, $"count must be ≥ 1; got {count}.");
        var files = ListImages(folder);
        int n = Math.Min(count, files.Count);
        var sides = new List<int>();
        bool allGrey = true;
        for (int i = 0; i < n; i++)
        {
            string path = files[(int)((long)i * files.Count / n)];
            using var codec = SkiaSharp.SKCodec.Create(path);
            if (codec is null || codec.Info.Width < 1 || codec.Info.Height < 1) continue;
            sides.Add(Math.Min(codec.Info.Width, codec.Info.Height));
            allGrey &= codec.Info.ColorType is SkiaSharp.SKColorType.Gray8;
        }
        if (sides.Count == 0)
            throw new MaeImageFileException(files[0], $"none of the {n} sampled files of '{folder}' has a readable image header (expected JPEG, PNG, BMP, GIF or WebP).");
        sides.Sort();
        return new MaeImageFolder.SizeSample(sides.Count, sides[(sides.Count - 1) / 2], allGrey ? 1 : 3);
    }
}

public static partial class MaeImageFolder
{
    /// <summary>What <see cref="MaeImageFolder.SampleSizes"/> read: how many headers, their median shorter side in pixels,
    /// and the channels (1 when every sampled image is grey, else 3).</summary>
    public sealed record SizeSample(int Files, int MedianShortSide, int Channels);
}

using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Mae.MLNet.Tests.Architecture;

/// <summary>
/// Which top-level folder of a project uses which, read from the compiler's own binding of every name in the
/// sources (types, members, extension methods, constructors), not from `using` lines: a file that calls a member of
/// a type declared in another folder depends on that folder even when it never spells the type's name.
/// </summary>
internal static class FolderGraph
{
    /// <summary>An edge From → To with the places that make it ("File.cs: Symbol").</summary>
    public sealed record Edge(string From, string To, IReadOnlyList<string> Uses);

    /// <summary>Compiles every .cs file under <paramref name="projectDir"/> (bin/obj excluded) against
    /// <paramref name="references"/> and returns the folder edges. Throws when the sources do not compile: a
    /// graph read from a broken compilation could miss edges silently.</summary>
    public static IReadOnlyList<Edge> Edges(string projectDir, IEnumerable<string> references, IEnumerable<string> extraSources,
        IEnumerable<string> preprocessorSymbols)
    {
        var options = new CSharpParseOptions(LanguageVersion.Preview, preprocessorSymbols: preprocessorSymbols);
        var files = Directory.EnumerateFiles(projectDir, "*.cs", SearchOption.AllDirectories)
            .Where(f => !IsBuildOutput(Path.GetRelativePath(projectDir, f)))
            .Concat(extraSources)
            .ToList();
        var trees = files.Select(f => CSharpSyntaxTree.ParseText(File.ReadAllText(f), options, f)).ToList();
        trees.Add(CSharpSyntaxTree.ParseText(ImplicitUsings, options, "ImplicitUsings.g.cs"));
        var compilation = CSharpCompilation.Create("FolderGraph", trees,
            references.Select(r => MetadataReference.CreateFromFile(r)),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, allowUnsafe: true,
                nullableContextOptions: NullableContextOptions.Enable));
        // CS8795: a [GeneratedRegex] partial method, whose body a source generator writes in the real build.
        var errors = compilation.GetDiagnostics()
            .Where(d => d.Severity == DiagnosticSeverity.Error && d.Id != "CS8795").Take(5).ToList();
        if (errors.Count > 0)
            throw new InvalidOperationException("The sources did not compile for the folder graph:\n" + string.Join("\n", errors));

        string? FolderOf(SyntaxTree? tree)
        {
            if (tree is null || !tree.FilePath.StartsWith(projectDir, StringComparison.Ordinal)) return null;
            var rel = Path.GetRelativePath(projectDir, tree.FilePath).Split(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar);
            return rel.Length > 1 ? rel[0] : ".";
        }

        var uses = new Dictionary<(string, string), SortedSet<string>>();
        foreach (var tree in trees)
        {
            var from = FolderOf(tree);
            if (from is null) continue;
            var model = compilation.GetSemanticModel(tree);
            foreach (var node in tree.GetRoot().DescendantNodes())
            {
                ISymbol? symbol = node switch
                {
                    SimpleNameSyntax name => model.GetSymbolInfo(name).Symbol ?? model.GetSymbolInfo(name).CandidateSymbols.FirstOrDefault(),
                    ImplicitObjectCreationExpressionSyntax create => model.GetSymbolInfo(create).Symbol,
                    ConstructorInitializerSyntax init => model.GetSymbolInfo(init).Symbol,
                    PrimaryConstructorBaseTypeSyntax init => model.GetSymbolInfo(init).Symbol,
                    _ => null,
                };
                foreach (var declared in DeclarationsOf(symbol))
                {
                    var to = FolderOf(declared.SyntaxTree);
                    if (to is null || to == from) continue;
                    if (!uses.TryGetValue((from, to), out var set)) uses[(from, to)] = set = new SortedSet<string>(StringComparer.Ordinal);
                    set.Add($"{Path.GetFileName(tree.FilePath)}: {symbol!.ToDisplayString(SymbolDisplayFormat.CSharpShortErrorMessageFormat)}");
                }
            }
        }
        return uses.Select(kv => new Edge(kv.Key.Item1, kv.Key.Item2, kv.Value.ToList()))
            .OrderBy(e => e.From, StringComparer.Ordinal).ThenBy(e => e.To, StringComparer.Ordinal).ToList();
    }

    /// <summary>Where a symbol is written down: its own declaration, or its type's where the compiler made it
    /// (implicit constructors, record members); extension calls resolve to the static method; generic uses to
    /// their definition.</summary>
    static IEnumerable<SyntaxReference> DeclarationsOf(ISymbol? symbol)
    {
        if (symbol is null) return [];
        if (symbol is IMethodSymbol { ReducedFrom: { } reduced }) symbol = reduced;
        symbol = symbol.OriginalDefinition;
        if (symbol is INamespaceSymbol or ILocalSymbol or IParameterSymbol or IRangeVariableSymbol or ILabelSymbol) return [];
        if (symbol is ITypeParameterSymbol) return [];
        var refs = symbol.DeclaringSyntaxReferences;
        if (refs.IsEmpty && symbol.ContainingType is { } owner) refs = owner.OriginalDefinition.DeclaringSyntaxReferences;
        return refs.IsEmpty ? [] : [refs[0]];
    }

    static bool IsBuildOutput(string relative)
    {
        var first = relative.Split(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar)[0];
        return first is "bin" or "obj";
    }

    // The SDK's ImplicitUsings for Microsoft.NET.Sdk (the project sets ImplicitUsings=enable).
    const string ImplicitUsings = """
        global using System;
        global using System.Collections.Generic;
        global using System.IO;
        global using System.Linq;
        global using System.Net.Http;
        global using System.Threading;
        global using System.Threading.Tasks;
        """;
}

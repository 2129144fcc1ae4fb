// MathJax 2 settings of the book, loaded after the nbconvert template's own config
// (mkdocs.yml: custom_mathjax_url). The jupyter-server-mathjax package ships the STIX-Web fonts
// only: use them, never image fonts, and leave out the hidden assistive MathML copy, whose
// styles ask for TeX fonts the package does not have.
MathJax.Hub.Config({
  "HTML-CSS": {availableFonts: ["STIX-Web"], preferredFont: "STIX-Web", webFont: "STIX-Web",
               imageFont: null},
  menuSettings: {assistiveMML: false}
});
MathJax.Ajax.loadComplete("[MathJax]/config/local/book.js");
